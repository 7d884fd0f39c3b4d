#pragma once
// `dataset build`: Alexandria's Dataset Builder (spec/alexandria-compat.md §1.3-1.5) as a restartable command.
//
// Rows (emotion, text, optional seed) are read from
//   .jsonl  one {"emotion": ..., "text": ..., "seed": ...} per line ("instruct" is accepted for "emotion")
//   .json   an array of such objects (Alexandria's "<name>_script.json" export)
//   .csv    RFC 4180 (quotes for commas), columns emotion,text[,seed]; a first line naming the columns (in any
//           order) is a header
// A seed is an integer ≥ 0 or a string of digits (Alexandria stores strings); empty, null or negative = none.
// Every row problem is reported at once (InputError) before anything is generated.
//
// Each row is one VoiceDesign call: instruct = "<description>, <emotion>" (just the description when the emotion
// is empty), seed = the row's, else --seed, else random; the seed actually used is recorded. A result is
// *suspect* when generation hit the frame cap (no EOS), when it is longer than max_seconds (training would skip
// it), or when its length is implausible for its text:
//   weight  = code points of the text, CJK ideographs / kana / hangul counting 3 (≈ one syllable)
//   too short:  seconds < weight / max_chars_per_second      (default 40 chars/s)
//   too long:   seconds > weight / min_chars_per_second + 2  (default 5 chars/s, 2 s slack)
// (the builtins speak 16-18 chars/s, compat §6). A suspect row is regenerated with the next seed (seed + 1), at
// most max_attempts times in all; then it is reported as failed and left out — or kept with a warning when
// accept_suspect is set. Never silently kept.
//
// Folders:
//   <out>.build/   the work folder: state.json (saved after every row) and one <key>.wav per generated row.
//                  A row's key hashes the model folder, the instruct, the text, the language, the frame cap and the
//                  requested seed (row seed, --seed, or "random"), so a rerun reuses every row that is unchanged,
//                  whatever its position (changing the emotion or the seed regenerates it — Alexandria's builder
//                  kept a stale sample then). A failed row continues from its last seed + 1 on the next run.
//   <out>/         the dataset, assembled atomically when the run ends: sample_NNN.wav (NNN = row index, so
//                  failed rows leave gaps, as Alexandria's save), metadata.jsonl ({audio_filepath, text,
//                  ref_audio}), ref.wav (byte copy of the reference row), ref_text.txt (its exact text, no
//                  newline), build.json (description, model, every row's seed used, attempts, status, reasons).
//                  A folder without our build.json is replaced only with force.
// The reference row: ref_index (0-based) when given, else the longest (by text) neutral row — emotion empty or
// containing "neutral" or "calm" — else the longest row; among rows that ended done. If the requested ref_index
// row failed, the run reports it and falls back to the default rule.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alexandria/synth/synthesizer.h"

namespace alexandria::synth {

struct BuildRow {
    int index = 0;  // 0-based row index
    int line = 0;   // line (jsonl/csv) or array element (json, 1-based) it came from
    std::string emotion, text;
    std::optional<uint64_t> seed;
};

// Reads and validates a rows file. InputError listing every bad row ("rows.csv:4: field 'text': empty").
std::vector<BuildRow> read_build_rows(const std::string& path);

// The instruct Alexandria builds: "<description>, <emotion>", or the description alone.
std::string build_instruct(const std::string& description, const std::string& emotion);
// The length-weight of a text (see above).
double text_weight(const std::string& text);
bool is_neutral_emotion(const std::string& emotion);
// The default reference row among `candidates` (indices into rows): the longest neutral one, else the longest.
int default_ref_row(const std::vector<BuildRow>& rows, const std::vector<int>& candidates);

// A starter rows file following the seed's tips: mixed emotions and lengths, short utterances ("Oh!", "Hmm."),
// and a long calm neutral passage last (the reference). format: "jsonl" | "csv".
std::string rows_template(const std::string& format = "jsonl");

struct DatasetBuildOptions {
    std::string out;          // the dataset folder (NAME)
    std::string description;  // root voice description
    std::string rows;         // rows file
    std::optional<uint64_t> seed;      // --seed (global)
    std::optional<int> ref_index;      // --ref-index
    int max_attempts = 3;
    double max_seconds = 30.0;
    double max_chars_per_second = 40.0;
    double min_chars_per_second = 5.0;
    bool accept_suspect = false;
    bool force = false;       // replace an <out> that we did not build
    bool restart = false;     // ignore the work folder's finished rows (regenerate everything)
    std::string language;     // "" = auto
    int64_t max_frames = 0;   // 0 = the checkpoint's max_new_tokens (2048, as Alexandria)
    FrameCapRule cap_rule;    // the synthesizer's runaway guard; a row that hits it is suspect and regenerated
    int64_t batch = 0;        // rows generated at once (Synthesizer::speak_batch); 0 = per device (default_batch)
};

struct BuildRowResult {
    BuildRow row;
    std::string instruct;
    std::string status;       // "done" | "failed"
    bool reused = false;      // taken from the work folder
    bool suspect = false;     // kept with accept_suspect despite a problem
    std::vector<uint64_t> seeds_tried;
    uint64_t seed_used = 0;   // the seed of the kept audio (done rows)
    std::string reason;       // why the last attempt was suspect ("" when fine)
    double seconds = 0;
    int64_t frames = 0;
    bool hit_cap = false;
    std::string audio_filepath;  // in the dataset (done rows)
};

struct DatasetBuildReport {
    std::string out, work_dir;
    std::vector<BuildRowResult> rows;
    int done = 0, failed = 0, reused = 0, generated = 0, suspect_kept = 0;
    int ref_row = -1;
    std::string ref_note;     // e.g. why the requested ref_index was not used
    double total_seconds = 0;
    bool written = false;
    bool complete() const { return failed == 0; }
    nlohmann::json to_json() const;
};

// Why a generated take is suspect ("" when it is fine), by the rules above, in that order: no audio, frame cap,
// over max_seconds, silent, too short, too long.
std::string judge_take(double seconds, bool hit_cap, int64_t frame_cap, bool silent, const std::string& text,
                       const DatasetBuildOptions& options);

// Called as each row is finished (reused, done or failed; rows generated together finish in any order):
// result, rows handled so far, total.
using BuildRowCallback = std::function<void(const BuildRowResult&, int done, int total)>;

// Runs the build with a loaded VoiceDesign synthesizer. InputError: not a VoiceDesign checkpoint, empty
// description, bad rows, ref_index out of range, <out> not ours and non-empty without force. Error (exit 1) when
// no row could be generated (nothing is assembled then; the work folder keeps the state).
DatasetBuildReport build_dataset(Synthesizer& synth, const DatasetBuildOptions& options,
                                 const BuildRowCallback& on_row = {});

}  // namespace alexandria::synth
