#pragma once
// A dataset folder in the seed's layout (spec/alexandria-compat.md §1.5):
//   metadata.jsonl   {"audio_filepath": "sample_000.wav", "text": "...", "ref_audio": "ref.wav"} per line
//                    ("audio" is accepted for "audio_filepath"; "ref_audio" is optional)
//   ref.wav          reference audio for the speaker embedding
//   ref_text.txt     its exact transcript
//   sample_NNN.wav   training audio
// Loading reads metadata and the reference files' presence; it decodes no audio (check.h does).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace alexandria::dataset {

namespace fs = std::filesystem;

constexpr const char* kMetadataFile = "metadata.jsonl";
constexpr const char* kRefAudioFile = "ref.wav";
constexpr const char* kRefTextFile = "ref_text.txt";

enum class Severity { Error, Warning, Note };
std::string severity_name(Severity s);  // "error" | "warning" | "note"

// Something wrong (or worth saying) about the folder. `message` is complete on its own and names file, line
// and field where they apply ("metadata.jsonl:3: field 'text': missing"); the other members let machines
// filter. `code` is a stable identifier (e.g. "invalid-json", "path-outside", "undecodable", "too-long").
struct Problem {
    Severity severity = Severity::Error;
    std::string code;
    std::string file;   // path as the user gave it (relative to the dataset folder where possible)
    int line = 0;       // 1-based metadata.jsonl line, 0 when not about a line
    std::string field;  // JSON field, "" when not about one
    std::string message;
};

struct Entry {
    int line = 0;                        // 1-based line in metadata.jsonl
    std::string audio;                   // as written in the metadata ("" when missing)
    fs::path audio_path;                 // resolved inside the folder; empty when it could not be resolved
    std::string text;                    // as written (not trimmed)
    std::optional<std::string> ref_audio;        // as written, when the line has one
    std::optional<fs::path> ref_audio_path;      // resolved inside the folder
    std::vector<Problem> problems;       // metadata problems of this line (errors make the entry unusable)
    bool has_errors() const;
};

struct Dataset {
    fs::path dir;                        // the folder, absolute and canonical
    fs::path metadata_path;
    std::string metadata_display;        // metadata.jsonl as the user would name it (the folder as given)
    std::vector<Entry> entries;          // every line that parsed as a JSON object, in file order
    std::vector<Problem> problems;       // folder-level problems and lines that did not parse
    std::optional<fs::path> ref_wav;     // <dir>/ref.wav when it exists (not decoded here)
    std::optional<std::string> ref_text; // contents of ref_text.txt when it exists (raw, not trimmed)
    bool ref_text_utf8 = true;

    // Never throws for problems inside the folder: they are recorded in `problems` / `Entry::problems`, so
    // `dataset check` can report them all at once. InputError only when `dir` does not exist or is not a
    // directory.
    static Dataset load(const fs::path& dir);

    bool has_errors() const;             // any Error in problems or in an entry
    // The reference audio training uses, as Alexandria does: the first entry's ref_audio, else ref.wav, else
    // nothing (the caller falls back to the first usable clip). `source` says which ("metadata line N
    // ref_audio", "ref.wav").
    std::optional<fs::path> reference_audio(std::string* source = nullptr) const;
    // Path relative to the folder for messages ("sample_000.wav"), the path itself when outside.
    std::string display(const fs::path& p) const;
};

// True when text has no characters but whitespace.
bool blank(const std::string& text);

}  // namespace alexandria::dataset
