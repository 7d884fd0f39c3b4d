#pragma once
// Rendering a whole script: one file per line in an output folder, long lines split at sentence ends and joined,
// reruns that skip finished lines (outputs are written atomically, so existence means complete), deterministic
// shards, per-line failures that do not stop the others, and the merged book with Alexandria's pauses.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "alexandria/io/audio.h"
#include "alexandria/synth/script.h"
#include "alexandria/synth/synthesizer.h"

namespace alexandria::synth {

struct ScriptOptions {
    std::string script;       // lines.jsonl
    std::string out_dir;      // one file per line
    std::string merge_path;   // optional: the whole book
    std::optional<Shard> shard;
    io::AudioFormat format = io::AudioFormat::WavPcm16;
    int max_chars = 500;      // split longer lines at sentence ends (0 = never)
    bool force = false;       // re-render lines whose output exists
    Utterance defaults;       // per-run settings (language, instruct, reference, seed, caps, layout ...)
    // Voice names → adapter folder or reference clip. A line's `voice` (or, when it has none, its `speaker` on a
    // non-CustomVoice model) is looked up here, else taken as a path relative to the script's folder.
    std::map<std::string, std::string> voices;
    PauseRule pauses;
    // Lines rendered at once (Synthesizer::speak_batch); 1 = one after the other. Lines finish out of order then,
    // and the line callback follows completion order (the report stays in script order).
    int64_t batch = 1;
};

struct LineReport {
    int line = 0;
    std::string text_preview;  // first ~60 characters
    std::string out;           // output path
    enum class Status { Rendered, Skipped, Failed } status = Status::Rendered;
    std::string error;
    int chunks = 0;
    int64_t frames = 0;
    bool hit_cap = false;      // at least one chunk stopped at the frame cap
    double audio_seconds = 0, compute_seconds = 0;
    double rtf() const { return audio_seconds > 0 ? compute_seconds / audio_seconds : 0.0; }
};

struct ScriptProgress {
    int done = 0, total = 0;   // lines of this shard handled so far / in all
    double elapsed = 0;        // seconds
    double eta = -1;           // seconds left (estimated from characters rendered so far), -1 = unknown
};

struct ScriptReport {
    std::vector<LineReport> lines;  // lines of this shard (bad lines included), in script order
    int rendered = 0, skipped = 0, failed = 0, capped = 0;
    int other_shards = 0;           // lines left to other shards
    bool merged = false;
    std::string merge_note;         // why the book was not written, when requested and not written
    double book_seconds = 0;
    bool ok() const { return failed == 0; }
};

using LineCallback = std::function<void(const LineReport&, const ScriptProgress&)>;

// Resolves a voice reference to (adapter folder, reference clip): exactly one is non-empty.
std::pair<std::string, std::string> resolve_voice(const std::string& voice,
                                                  const std::map<std::string, std::string>& voices,
                                                  const std::string& script_dir);

// Speaks one text (split into chunks of ≤ max_chars at sentence ends, joined without gaps) → audio + report.
// on_chunk_start(i) is called before chunk i and on_frame for every frame of every chunk (streaming output).
SynthResult speak_long(Synthesizer& synth, const Utterance& u, int max_chars, int* chunks = nullptr,
                       bool* any_capped = nullptr, const std::function<void(int chunk)>& on_chunk_start = {},
                       const FrameCallback& on_frame = {});

ScriptReport render_script(Synthesizer& synth, const ScriptOptions& opts, const LineCallback& on_line = {});

// True when any voice a script's lines use is an adapter other than `default_adapter` (then adapters are kept
// unmerged so lines can switch between them).
bool script_switches_adapters(const Script& script, const ScriptOptions& opts, const std::string& default_adapter);

}  // namespace alexandria::synth
