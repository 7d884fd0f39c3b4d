#pragma once
// `--model` accepts a folder or a Hugging Face repo id found in the local HF cache. Nothing is downloaded.
#include <string>

namespace alexandria::io {

// Returns the model folder. Looks, in order: the path itself; $HF_HUB_CACHE, $HF_HOME/hub,
// $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub for models--Org--Name/snapshots/<rev>
// (refs/main first, else the newest snapshot). InputError listing every place looked when nothing is found.
std::string locate_model(const std::string& spec);

}  // namespace alexandria::io
