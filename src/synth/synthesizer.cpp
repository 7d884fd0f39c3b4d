#include "alexandria/synth/synthesizer.h"

#include <cctype>
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/model_location.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/speaker_encoder.h"
#include "alexandria/text/prompt.h"

namespace alexandria::synth {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Candidate names for a stored speaker vector beside an adapter (ours first).
const char* kSpeakerFiles[] = {kSpeakerEmbeddingFile, "speaker_embedding.st", "spk_embedding.safetensors"};

}  // namespace

std::vector<float> trim_reference(const std::vector<float>& wav, int64_t ref_frames, int64_t total_frames) {
    if (ref_frames <= 0) return wav;
    // int(ref_len / max(total_len, 1) * wav_len), in double precision as Python computes it.
    double frac = static_cast<double>(ref_frames) / static_cast<double>(std::max<int64_t>(total_frames, 1));
    auto cut = static_cast<size_t>(std::max(0.0, std::floor(frac * static_cast<double>(wav.size()))));
    if (cut >= wav.size()) return {};
    return std::vector<float>(wav.begin() + static_cast<std::ptrdiff_t>(cut), wav.end());
}

AdapterVoice inspect_adapter_voice(const std::string& dir) {
    AdapterVoice v;
    v.dir = dir;
    fs::path d(dir);
    if (!fs::is_directory(d)) throw InputError(fmt::format("adapter folder '{}' does not exist", dir));
    if (fs::exists(d / kRefSampleFile)) v.ref_sample = (d / kRefSampleFile).string();
    for (const char* name : kSpeakerFiles)
        if (fs::exists(d / name)) {
            v.speaker_file = (d / name).string();
            break;
        }
    auto meta_path = d / kTrainingMetaFile;
    if (fs::exists(meta_path)) {
        nlohmann::json meta;
        try {
            meta = nlohmann::json::parse(io::read_file(meta_path));
        } catch (const nlohmann::json::exception& e) {
            throw InputError(fmt::format("{}: invalid JSON ({})", meta_path.string(), e.what()));
        }
        if (meta.is_object()) {
            if (auto it = meta.find("ref_sample_text"); it != meta.end() && it->is_string())
                v.ref_sample_text = it->get<std::string>();
            if (auto it = meta.find("prompt"); it != meta.end() && it->is_string()) v.prompt = it->get<std::string>();
            if (auto it = meta.find("language"); it != meta.end() && it->is_string()) {
                v.language = lower(it->get<std::string>());
            } else if (meta.contains("ref_sample_text") && meta.contains("model_name")) {
                // Alexandria's train_lora.py hard-codes the think + English codec prefix (spec §7.3) and records
                // no language: synthesise under the conditioning it was trained with.
                v.language = "english";
            }
        }
    }
    return v;
}

torch::Tensor read_speaker_embedding(const std::string& path) {
    io::SafetensorsFile f(path);
    std::vector<std::string> names;
    for (const auto& t : f.tensors()) names.push_back(t.name);
    if (names.empty()) throw InputError(fmt::format("{}: holds no tensor", path));
    std::string name = names.front();
    for (const auto& n : names)
        if (n == "speaker_embedding") name = n;
    if (names.size() > 1 && name != "speaker_embedding")
        throw InputError(fmt::format("{}: several tensors and none named 'speaker_embedding'", path));
    auto t = f.view(name).to(torch::kFloat32).reshape({-1}).clone();
    if (!torch::isfinite(t).all().item<bool>()) throw InputError(fmt::format("{}: non-finite speaker vector", path));
    return t;
}

struct Synthesizer::State {
    LoadOptions opts;
    std::string dir;
    model::LoadedModel lm;
    std::optional<text::Tokenizer> tok;
    std::optional<codec::Codec> codec;
    std::string active;  // applied adapter dir
    bool merged = false;
    bool switched = false;  // another adapter was used: keep branches unmerged from then on
    std::optional<AdapterVoice> model_voice;  // a merged folder's voice (written by `adapter merge`)
    std::map<std::string, model::Adapter> adapters;
    std::map<std::string, AdapterVoice> voices;
    std::map<std::string, torch::Tensor> speakers;  // key → [H] on device, model dtype
    std::map<std::string, torch::Tensor> ref_codes; // wav path → [T, 16] CPU

    model::Talker& talker() { return lm.model->talker; }

    torch::Tensor to_model(const torch::Tensor& v) {
        auto out = v.to(opts.device, opts.dtype).reshape({-1});
        int64_t H = lm.config.talker.hidden_size;
        if (out.size(0) != H)
            throw InputError(fmt::format("speaker vector has {} values; this talker needs {} (another model size?)",
                                         out.size(0), H));
        return out;
    }

    torch::Tensor speaker_from_audio(const std::string& wav_path) {
        auto key = "wav:" + fs::weakly_canonical(wav_path).string();
        if (auto it = speakers.find(key); it != speakers.end()) return it->second;
        if (!lm.model->has_speaker_encoder())
            throw InputError("this checkpoint has no speaker encoder (only Base checkpoints clone from audio)");
        auto audio = io::read_audio_resampled(wav_path, codec::kSampleRate);
        torch::NoGradGuard ng;
        auto v = to_model(model::speaker_embedding(lm.model->speaker_encoder, audio.samples));
        speakers[key] = v;
        return v;
    }

    torch::Tensor speaker_from_file(const std::string& path) {
        auto key = "file:" + path;
        if (auto it = speakers.find(key); it != speakers.end()) return it->second;
        auto v = to_model(read_speaker_embedding(path));
        speakers[key] = v;
        return v;
    }

    torch::Tensor codes_of(const std::string& wav_path) {
        auto key = fs::weakly_canonical(wav_path).string();
        if (auto it = ref_codes.find(key); it != ref_codes.end()) return it->second;
        auto audio = io::read_audio_resampled(wav_path, codec::kSampleRate);
        torch::NoGradGuard ng;
        auto c = codec->encode(audio.samples);
        ref_codes[key] = c;
        return c;
    }

    const AdapterVoice& voice_of(const std::string& adapter_dir) {
        auto it = voices.find(adapter_dir);
        if (it == voices.end()) it = voices.emplace(adapter_dir, inspect_adapter_voice(adapter_dir)).first;
        return it->second;
    }

    void use_adapter(const std::string& requested) {
        // One spelling per folder, so "a/" and "./a" are the same adapter.
        const std::string dir_ = requested.empty() ? std::string() : fs::weakly_canonical(requested).string();
        if (dir_ == active) return;
        auto& t = talker();
        torch::NoGradGuard ng;
        if (!active.empty()) {
            // Unmerging restores the base weights up to the dtype's rounding; from here on branches stay separate.
            if (merged) model::unmerge_lora(t);
            model::detach_lora(t);
            active.clear();
            merged = false;
            switched = true;
        }
        if (dir_.empty()) return;
        auto it = adapters.find(dir_);
        if (it == adapters.end()) it = adapters.emplace(dir_, model::read_adapter(dir_)).first;
        model::apply_adapter(t, it->second);
        model::set_lora_scale(t, opts.lora_scale);
        active = dir_;
        if (opts.merge_adapter && !switched) {
            model::merge_lora(t);
            merged = true;
        }
    }
};

Synthesizer::Synthesizer(const LoadOptions& opts) : s_(std::make_unique<State>()) {
    s_->opts = opts;
    if (!(opts.lora_scale >= 0) || !std::isfinite(opts.lora_scale))
        throw InputError(fmt::format("--lora-scale must be a finite number >= 0, got {}", opts.lora_scale));
    s_->dir = io::locate_model(opts.model);
    s_->lm = model::load_model(s_->dir, opts.device, opts.dtype);
    s_->tok = text::Tokenizer::from_folder(s_->dir);
    s_->codec = codec::Codec::load(s_->dir, opts.device, torch::kFloat32);
    if (fs::exists(fs::path(s_->dir) / kMergedFromFile)) s_->model_voice = inspect_adapter_voice(s_->dir);
    if (!opts.adapter.empty()) s_->use_adapter(opts.adapter);
}

Synthesizer::~Synthesizer() = default;
Synthesizer::Synthesizer(Synthesizer&&) noexcept = default;

const model::ModelConfig& Synthesizer::config() const { return s_->lm.config; }
const model::GenerationConfig& Synthesizer::generation() const { return s_->lm.generation; }
model::TTSModel& Synthesizer::model() { return s_->lm.model; }
const codec::Codec& Synthesizer::codec() const { return *s_->codec; }
const text::Tokenizer& Synthesizer::tokenizer() const { return *s_->tok; }
const std::string& Synthesizer::model_dir() const { return s_->dir; }
const std::string& Synthesizer::active_adapter() const { return s_->active; }
bool Synthesizer::adapter_merged() const { return s_->merged; }
void Synthesizer::use_adapter(const std::string& dir) { s_->use_adapter(dir); }

bool Synthesizer::uses_icl(const Utterance& u) {
    auto& S = *s_;
    if (S.lm.config.tts_model_type != "base") return false;
    if (!u.ref_audio.empty()) return !u.ref_text.empty();
    if (u.icl) return true;
    if (u.no_icl) return false;
    const std::string dir = u.adapter == "-" ? std::string() : (u.adapter.empty() ? S.opts.adapter : u.adapter);
    const AdapterVoice* av =
        !dir.empty() ? &S.voice_of(dir) : (S.model_voice && u.adapter != "-" ? &*S.model_voice : nullptr);
    return av && av->prompt == "icl";
}

Synthesizer::Prepared Synthesizer::prepare(const Utterance& u) {
    auto& S = *s_;
    const auto& cfg = S.lm.config;
    const std::string type = cfg.tts_model_type;

    S.use_adapter(u.adapter == "-" ? std::string() : (u.adapter.empty() ? S.opts.adapter : u.adapter));
    // The voice an adapter was trained with; a merged folder carries its adapter's voice files.
    const AdapterVoice* av = !S.active.empty() ? &S.voice_of(S.active)
                                               : (S.model_voice && u.adapter != "-" ? &*S.model_voice : nullptr);

    Prepared p;
    auto& req = p.request;
    auto target = text::encode_target_text(*S.tok, u.text);
    req.role.assign(target.role.begin(), target.role.end());
    req.content.assign(target.content.begin(), target.content.end());
    req.language = lower(!u.language.empty() ? u.language : (av && !av->language.empty() ? av->language : "auto"));

    if (!u.instruct.empty()) {
        if (type == "custom_voice" && cfg.tts_model_size == "0b6")
            throw InputError("0.6B CustomVoice does not follow instructions (the reference drops them): "
                             "remove --instruct or use the 1.7B CustomVoice checkpoint");
        auto ids = text::encode_instruct(*S.tok, u.instruct);
        req.instruct.assign(ids.begin(), ids.end());
    }
    if (!u.ref_text.empty() && u.ref_audio.empty())
        throw InputError("--ref-text needs --ref-audio (the recording it transcribes)");

    torch::Tensor spk;
    std::string icl_wav, icl_text;
    if (type == "base") {
        if (!u.speaker.empty())
            throw InputError(fmt::format("speaker '{}': named speakers need a CustomVoice checkpoint; a Base "
                                         "checkpoint clones a voice from --ref-audio or an --adapter",
                                         u.speaker));
        req.voice = VoiceKind::SpeakerVector;
        if (!u.ref_audio.empty()) {
            spk = S.speaker_from_audio(u.ref_audio);
            if (!u.ref_text.empty()) icl_wav = u.ref_audio, icl_text = u.ref_text;
        } else if (av) {
            if (!av->speaker_file.empty()) spk = S.speaker_from_file(av->speaker_file);
            else if (!av->ref_sample.empty()) spk = S.speaker_from_audio(av->ref_sample);
            else
                throw InputError(fmt::format("adapter '{}' has no stored speaker embedding and no {}: give "
                                             "--ref-audio",
                                             av->dir, kRefSampleFile));
            if (u.icl || (!u.no_icl && av->prompt == "icl")) {  // an ICL adapter speaks as it was trained
                if (av->ref_sample.empty() || av->ref_sample_text.empty())
                    throw InputError(fmt::format("--icl needs {} and ref_sample_text in {} of adapter '{}'",
                                                 kRefSampleFile, kTrainingMetaFile, av->dir));
                icl_wav = av->ref_sample, icl_text = av->ref_sample_text;
            }
        } else {
            throw InputError("a Base checkpoint clones a voice: give --ref-audio (with --ref-text for ICL) or "
                             "--adapter");
        }
        p.mode = icl_wav.empty() ? "clone x-vector" : "clone ICL";
    } else if (type == "custom_voice") {
        if (!u.ref_audio.empty()) throw InputError("CustomVoice checkpoints do not clone from --ref-audio");
        if (u.speaker.empty()) {
            auto sp = cfg.supported_speakers();
            std::string list;
            for (auto& s : sp) list += (list.empty() ? "" : ", ") + s;
            throw InputError(fmt::format("a CustomVoice checkpoint needs --speaker (one of: {})", list));
        }
        req.voice = VoiceKind::NamedSpeaker;
        req.speaker = u.speaker;
        p.mode = "custom voice";
    } else if (type == "voice_design") {
        if (!u.ref_audio.empty() || !u.speaker.empty())
            throw InputError("a VoiceDesign checkpoint takes its voice from --instruct (a description), not "
                             "--ref-audio or --speaker");
        req.voice = VoiceKind::None;
        p.mode = "voice design";
    } else {
        throw InputError(fmt::format("{}: unknown tts_model_type '{}'", cfg.source, type));
    }

    if (!icl_wav.empty()) {
        auto ref_ids = text::encode_reference_text(*S.tok, icl_text);
        req.ref_content.assign(ref_ids.begin(), ref_ids.end());
        p.ref_codes = S.codes_of(icl_wav);
        req.ref_frames = p.ref_codes.size(0);
        if (req.ref_frames == 0) throw InputError(fmt::format("{}: the reference has no audio frames", icl_wav));
    }
    req.layout = u.layout ? *u.layout : TextLayout::NonStreaming;

    auto recipe = build_prompt(req, cfg);
    auto& talker = S.talker();
    PromptEmbedders emb;
    auto dev = S.opts.device;
    emb.text = [&](const torch::Tensor& ids) { return talker->text_embed(ids.to(dev)); };
    emb.codec = [&](const torch::Tensor& ids) { return talker->codec_embed(ids.to(dev)); };
    emb.frame = [&](const torch::Tensor& codes) { return talker->frame_embed(codes.to(dev)); };
    {
        torch::NoGradGuard ng;
        p.tensors = embed_prompt(recipe, emb, cfg.tts_pad_token_id, spk, p.ref_codes);
    }
    int64_t max_frames = u.max_frames > 0 ? u.max_frames : S.lm.generation.max_new_tokens;
    p.frame_cap = frame_cap(static_cast<int64_t>(req.content.size()), max_frames, u.cap_rule);
    return p;
}

SynthResult Synthesizer::speak(const Utterance& u, const FrameCallback& on_frame) {
    auto t0 = Clock::now();
    auto p = prepare(u);
    GenerateOptions g;
    g.talker = talker_params(s_->lm.generation, u.greedy);
    g.subtalker = subtalker_params(s_->lm.generation, u.greedy);
    g.max_frames = p.frame_cap;
    g.seed = u.seed;
    auto gen = generate_codes(s_->talker(), p.tensors, g, on_frame);

    SynthResult r;
    r.frames = gen.codes.size(0);
    r.frame_cap = p.frame_cap;
    r.hit_cap = gen.hit_cap;
    r.mode = p.mode;
    r.language = p.request.language;
    r.layout = p.request.layout;
    r.text_tokens = static_cast<int64_t>(p.request.content.size());
    r.generate_seconds = since(t0);

    auto t1 = Clock::now();
    torch::NoGradGuard ng;
    if (p.ref_codes.defined()) {
        auto all = torch::cat({p.ref_codes.to(torch::kLong), gen.codes});
        r.audio = trim_reference(s_->codec->decode(all), p.ref_codes.size(0), all.size(0));
    } else if (r.frames > 0) {
        r.audio = s_->codec->decode(gen.codes);
    }
    r.decode_seconds = since(t1);
    return r;
}

}  // namespace alexandria::synth
