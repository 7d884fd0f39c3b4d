#pragma once
// `dataset import`: turns a speaker's own recordings into a dataset folder in the seed's layout.
//
// Source forms (SRC, detected unless `format` says otherwise):
//   folder    a directory of audio files (wav, flac, ogg, mp3, aiff, ... anything libsndfile reads), each with a
//             same-named `.txt` transcript beside it (`a.wav` + `a.txt`). Only the directory's own files, sorted by
//             name (byte order).
//   ljspeech  a `metadata.csv` (SRC itself, or SRC/metadata.csv) with `file|text` or `file|text|normalized` lines.
//             The file column may be a path (relative to the csv's folder) or an LJSpeech id without extension,
//             looked up as `wavs/<id>.wav`, `<id>.wav`, `wavs/<id>.flac`, `<id>.flac`. The second column is used
//             unless `use_normalized` picks the third. A first line such as `file|text` is taken as a header.
//   jsonl     a JSON Lines file (SRC itself, or SRC/metadata.jsonl) with `audio_filepath` (or `audio`) and `text`;
//             relative paths are relative to the file's folder, absolute paths are allowed.
// A directory holding metadata.csv is read as ljspeech, one holding metadata.jsonl as jsonl, anything else as folder.
//
// Output (DIR, written atomically: built in a sibling temp folder and renamed, so a failed or interrupted import
// leaves no half-written dataset):
//   sample_NNN.wav   24 kHz mono PCM16 (soxr HQ resampling, channels averaged). NNN is the clip's 0-based position
//                    in the source (its entry order; sorted file order for folders), zero-padded to at least 3
//                    digits. Skipped entries leave gaps, so fixing one bad clip never renames the others, and
//                    appending clips to the source keeps every earlier name (as Alexandria's Dataset Builder, which
//                    also numbers by row).
//   metadata.jsonl   {"audio_filepath": "sample_000.wav", "text": "...", "ref_audio": "ref.wav"} per line, UTF-8
//                    unescaped (Alexandria's exact line format; `ref_audio` is what train_lora.py reads).
//   ref.wav          a byte copy of the chosen reference clip (it stays a training clip too, as in Alexandria).
//   ref_text.txt     the reference's exact transcript, no trailing newline.
//   import.json      the report below: where each clip came from, what was skipped and why, the reference pick.
//
// Bad entries (no transcript, empty or non-UTF-8 text, unreadable/silent audio, longer than max_seconds, the same
// audio listed twice, two audio files claiming one transcript) are skipped with a message naming the file/line;
// the rest is still imported. Only when no usable clip remains nothing is written and ImportFailed (an InputError,
// exit 2) is thrown, carrying the report.
//
// The reference, unless `ref` names one, is the clip with the best score (all terms in [0, 1]):
//   score = 0.35·duration + 0.25·level + 0.20·clean + 0.20·calm   (+1 when eligible)
//   eligible  5 s ≤ length ≤ 15 s, no clipping (peak < 0.999 and no clipped samples), not silent
//   duration  longer is better inside 5-15 s: (s − 5)/10; outside the range it falls off: s/5·0.5 below 5 s,
//             max(0, 1 − (s − 15)/15)·0.5 above 15 s
//   level     closeness of the clip's active-speech level (dB) to the dataset median: exp(−|Δ dB| / 6)
//   clean     an SNR estimate, 90th minus 10th percentile of 20 ms frame levels, min(snr, 40 dB)/40
//   calm      the seed's "calm, neutral passage": 1, −0.4 if the text has '!', −0.2 for '?', −0.2 for a
//             shouted word (3+ letters all capitals), −0.2 when it does not end like a sentence (. , ; : " ' ”)
//             floored at 0, then × a preference for longer sentences: min(1, words/20)·0.5 + 0.5
// Ties keep the earlier clip. Every clip's score is in the report.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"

namespace alexandria::dataset {

namespace fs = std::filesystem;

enum class SourceFormat { Auto, Folder, LJSpeech, Jsonl };
SourceFormat parse_source_format(const std::string& s);  // "auto" | "folder" | "ljspeech" | "jsonl"
std::string to_string(SourceFormat f);

struct ImportOptions {
    fs::path source;
    fs::path out;
    SourceFormat format = SourceFormat::Auto;
    double max_seconds = 30.0;
    // Reference: an audio path (as given, else relative to SRC's folder), or a source clip's name/stem. Its
    // transcript is the clip's own when it is one of the source clips, else `ref_text`, else a same-named .txt.
    std::string ref;
    std::string ref_text;
    bool use_normalized = false;  // ljspeech: take the third column
    bool force = false;           // replace a non-empty `out`
};

struct ImportedClip {
    std::string source;          // source path as written in the source (or relative to SRC for folders)
    int source_line = 0;         // csv / jsonl line, 0 for folders
    std::string audio_filepath;  // in the dataset, e.g. "sample_003.wav"
    std::string text;
    double seconds = 0;
    int source_rate = 0;
    int source_channels = 0;
    double peak = 0;
    double level_db = 0;  // active-speech level (mean of the louder half of 20 ms frames), dBFS
    double snr_db = 0;
    double ref_score = 0;
};

struct SkippedEntry {
    std::string source;  // file or "file:line"
    std::string reason;
};

struct ImportReport {
    fs::path source;
    fs::path out;
    SourceFormat format = SourceFormat::Auto;
    int entries = 0;  // entries seen in the source
    std::vector<ImportedClip> clips;
    std::vector<SkippedEntry> skipped;
    std::vector<std::string> warnings;  // kept clips that deserve a look (e.g. duplicate content)
    std::string ref_source;             // the clip (or --ref file) used for ref.wav
    std::string ref_text;
    double ref_seconds = 0;
    double ref_score = 0;  // automatic pick only
    std::string ref_reason;
    double total_seconds = 0;
    bool written = false;

    nlohmann::json to_json() const;
};

// Thrown when nothing usable is left (or the reference cannot be used); nothing is written.
class ImportFailed : public InputError {
public:
    ImportFailed(const std::string& what, ImportReport report) : InputError(what), report_(std::move(report)) {}
    const ImportReport& report() const { return report_; }
private:
    ImportReport report_;
};

// Usage errors (SRC missing or unrecognised, `out` non-empty without force, `out` inside SRC or SRC inside
// `out`, max_seconds ≤ 0) throw InputError before anything is read.
ImportReport import_dataset(const ImportOptions& options);

// One line of an LJSpeech metadata.csv (`lineno` 1-based; line 1 may be a header such as `file|text`), exposed for
// tests and fuzzing. Never throws: a bad row carries its reason.
struct CsvRow {
    bool skip = false;           // a blank line or the header
    int columns = 0;             // '|'-separated columns found
    std::string file;            // the file column, trimmed
    std::string text;            // the transcript column used, cleaned (line breaks and runs of spaces → one space)
    std::string error;           // non-empty: the row cannot be imported, and why
    bool no_normalized = false;  // use_normalized was asked for and the row has no third column
};
CsvRow parse_ljspeech_row(std::string line, int lineno, bool use_normalized);

// Reference scoring, exposed for tests and for `dataset build`'s callers.
struct RefCandidate {
    double seconds = 0;
    double peak = 0;
    double clipped_fraction = 0;
    double level_db = 0;
    double snr_db = 0;
    bool silent = false;
    std::string text;
};
bool ref_eligible(const RefCandidate& c);
double ref_score(const RefCandidate& c, double median_level_db);
// Active-speech level and SNR estimate of 24 kHz audio from 20 ms frame levels (see above).
void speech_levels(const std::vector<float>& samples, int sample_rate, double* level_db, double* snr_db);

}  // namespace alexandria::dataset
