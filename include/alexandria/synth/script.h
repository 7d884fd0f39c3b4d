#pragma once
// Synthesis scripts (JSONL, one utterance per line) and the pieces of book rendering that need no model:
// parsing with per-line errors, deterministic sharding, output naming, sentence chunking of long text, and the
// assembly of a book with Alexandria's pauses (spec alexandria-compat.md §3.4-3.5).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace alexandria::synth {

// One line of a script:
//   {"text": "...", "out": "ch1/0001.wav", "speaker": "ryan", "voice": "narrator", "instruct": "...",
//    "language": "english", "seed": 7, "pause_after": 0.8}
// Only `text` is required. `speaker` is a CustomVoice speaker (and the identity the pause rule compares);
// `voice` names a voice given with --voice NAME=PATH (an adapter folder or a reference clip) or is such a path
// relative to the script's folder. `pause_after` is in seconds.
struct ScriptLine {
    int line = 0;   // 1-based line number in the file
    int index = 0;  // 0-based position among the script's entries (bad lines included): what shards divide
    std::string text, out, speaker, voice, instruct, language;
    std::optional<uint64_t> seed;
    std::optional<double> pause_after;
    // Who is speaking, for the pause rule: speaker, else voice.
    std::string identity() const { return !speaker.empty() ? speaker : voice; }
};

struct ScriptError {
    int line = 0;
    int index = 0;
    std::string message;  // "script.jsonl:7: field 'text': missing"
};

struct Script {
    std::string path;
    std::vector<ScriptLine> lines;
    std::vector<ScriptError> errors;  // bad JSON, missing/empty text, ill-typed fields (see validate_script)
};

// InputError only when the file cannot be read at all.
Script read_script(const std::string& path);

// What a line may name beyond its syntax, known only to the caller (the model, the --voice list).
struct ScriptCheck {
    // Throws InputError when a line's `voice` names nothing usable (not a --voice name, no such folder or file).
    std::function<void(const std::string& voice)> voice;
    // The model's speakers (CustomVoice); when non-empty, a line's `speaker` must be one of them.
    std::vector<std::string> speakers;
};
// The whole script, before anything is rendered: when any line is bad (invalid JSON, a field of the wrong type, an
// unknown voice or speaker) throws one InputError that starts with the first bad line's "file:line: field '...'"
// and lists the others (up to 20), so a run either renders every line or none.
void validate_script(const Script& script, const ScriptCheck& check = {});

// "K/N" with 1 ≤ K ≤ N (1-based, like `split -n K/N`); InputError otherwise.
struct Shard {
    int k = 1, n = 1;
    bool contains(int index) const { return index % n == k - 1; }
};
Shard parse_shard(const std::string& s);

// The file a line is written to, relative to the output folder: its `out`, else "line-NNNNN.<ext>" from its
// line number (so shards and reruns agree on names without coordination).
std::string line_output_name(const ScriptLine& line, const std::string& extension);

// Splits text into chunks of at most `max_chars` code points at sentence ends (. ! ? … and CJK 。！？, with any
// closing quotes/brackets), greedily packing whole sentences; a sentence longer than the limit is split at
// clause punctuation (, ; :), then at spaces, and only a single word longer than the limit is cut. Whitespace is
// trimmed; max_chars ≤ 0 means no splitting. Never returns an empty chunk for non-blank text.
std::vector<std::string> split_text(const std::string& text, int max_chars);
size_t count_code_points(const std::string& utf8);

// Pauses of Alexandria's merge: 0.5 s between different speakers, 0.25 s for the same speaker.
struct PauseRule {
    double between_speakers = 0.5;
    double same_speaker = 0.25;
};
// Seconds of silence after `prev` when `next` follows (its pause_after wins).
double pause_between(const ScriptLine& prev, const ScriptLine& next, const PauseRule& rule = {});
// Number of samples of that pause at `sample_rate` (rounded to the nearest sample).
int64_t pause_samples(double seconds, int sample_rate);

// Concatenates parts with the given silences between them (gaps[i] after parts[i]; gaps.size() = parts-1).
std::vector<float> join_audio(const std::vector<std::vector<float>>& parts, const std::vector<int64_t>& gaps);

}  // namespace alexandria::synth
