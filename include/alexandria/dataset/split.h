#pragma once
// `dataset split`: a held-out validation set for `eval`, fixed by each clip's own content.
//
// Rule (per clip, so adding clips later never moves the old ones):
//   bucket(clip) = fmix64(FNV-1a-64(bytes of the clip's audio file)) mod 10000
//   the clip is in val  iff  bucket < round(val_fraction · 10000)
// (fmix64 is MurmurHash3's 64-bit finaliser; it spreads FNV's weak low bits before the modulo.)
// The reference never goes to val: a clip whose audio bytes equal ref.wav's, or whose path is ref.wav or any
// line's `ref_audio`, is always train. If val_fraction > 0 and the rule puts no clip in val while at least two
// non-reference clips exist, the clip with the smallest bucket goes to val (recorded as `fallback` in split.json);
// only this fallback can change when clips are added to a very small dataset.
//
// Files (the folder DIR/splits/ is replaced atomically):
//   DIR/splits/train.jsonl, DIR/splits/val.jsonl  the metadata.jsonl lines of each side, byte for byte, in the
//                                                  metadata's order; their paths stay relative to DIR (not splits/)
//   DIR/splits/split.json                          the rule, the fraction, the counts, the bucket of every clip and
//                                                  the FNV hash of metadata.jsonl the split was made from
//
// Readers (train, eval): `load_split(dir, "train")` / `load_split(dir, "val")` give the lines of one side, or
// nullopt when the folder has never been split. A split made from an older metadata.jsonl is refused with an
// InputError that says to run `alexandria dataset split DIR` again, so a stale split never leaks val clips into
// training. `split_file(dir, which)` is the path of one side's JSONL, for tools that want the file itself.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace alexandria::dataset {

namespace fs = std::filesystem;

struct SplitLine {
    int line = 0;                // line in the file it was read from (metadata.jsonl, or the split file)
    std::string audio_filepath;  // relative to the dataset folder, as written
    std::string text;
    std::string ref_audio;       // empty when the line has none
    std::string raw;             // the line exactly as in metadata.jsonl
    uint32_t bucket = 0;         // 0..9999
};

struct SplitResult {
    double val_fraction = 0;
    uint32_t threshold = 0;  // clips with bucket < threshold are val
    std::vector<SplitLine> train, val;
    std::vector<std::string> ref_kept_in_train;  // audio_filepath of reference clips forced to train
    std::string fallback;                        // audio_filepath moved to val by the minimum-one rule, or ""
    std::vector<std::string> missing;            // lines whose audio file does not exist: in neither side
    std::string metadata_hash;
    nlohmann::json to_json() const;  // split.json's content
};

// 64-bit FNV-1a of the bytes passed through MurmurHash3's fmix64, mod 10000.
uint32_t split_bucket_of_hash(const std::string& fnv_hex16);
uint32_t split_bucket(const fs::path& audio_file);

// Computes the split without writing. InputError: val_fraction outside [0, 1] or NaN, no metadata.jsonl, bad lines
// (named by line and field), audio paths outside DIR. A line whose audio file is missing joins neither side (it is
// listed in `missing`; check skips such clips too); run split again once it exists.
SplitResult compute_split(const fs::path& dir, double val_fraction);
// compute_split + write DIR/splits/ atomically.
SplitResult split_dataset(const fs::path& dir, double val_fraction);

// "train" | "val" → DIR/splits/<which>.jsonl (InputError for any other name).
fs::path split_file(const fs::path& dir, const std::string& which);
// nullopt: DIR/splits/ does not exist. InputError: unknown `which`, unreadable or stale split.
std::optional<std::vector<SplitLine>> load_split(const fs::path& dir, const std::string& which);

}  // namespace alexandria::dataset
