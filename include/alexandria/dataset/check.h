#pragma once
// `dataset check`: decode every clip and tell the user what training will see. The rule for which clips are
// usable lives here and nowhere else: train, prepare and recommend count and select clips with it.
//
// A clip is usable when its metadata line has no error, its file exists inside the folder and decodes
// (libsndfile; not truncated, not empty, finite samples), it lasts at least kMinClipSeconds and at most
// max_seconds, it is not silent, its text is not blank, and it is not an exact repeat (same file, same text)
// of an earlier line. Unusable clips are skipped with a warning. The folder cannot be trained (exit 2) when
// the metadata is missing or malformed (a line that is not JSON, a missing or non-string field, a path
// outside the folder), when a named reference audio is missing or undecodable, or when no clip is usable.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "alexandria/dataset/dataset.h"
#include "alexandria/io/audio.h"
#include "alexandria/plan/recommend.h"

namespace alexandria::dataset {

constexpr double kDefaultMaxSeconds = 30.0;   // Alexandria's --max_audio_seconds
constexpr double kMinClipSeconds = 0.16;      // two codec frames (80 ms each)
constexpr double kClippingWarnFraction = 0.001;
constexpr int kShortUtteranceWords = 2;       // "Oh!", "Hmm.", "Right." and the like
constexpr double kTargetMinutesLow = 15, kTargetMinutesHigh = 30;

struct CheckOptions {
    double max_seconds = kDefaultMaxSeconds;
    std::optional<double> lr;      // passed on to the recommendation
    std::optional<int> epochs;
};

struct Clip {
    int line = 0;
    std::string audio;            // as written in the metadata
    fs::path path;                // resolved; empty when the metadata line had an error
    std::string text;
    bool found = false;           // the file exists
    bool decoded = false;         // fully decoded
    bool usable = false;
    bool short_utterance = false; // text of at most kShortUtteranceWords words
    int sample_rate = 0;
    int channels = 0;
    std::string format;           // libsndfile's description, e.g. "wav Signed 16 bit PCM"
    io::AudioStats stats;         // valid when decoded
    std::string skip_code;        // why unusable ("" when usable), a Problem code
    std::string skip_reason;
};

struct HistogramBin {
    double low = 0, high = 0;     // seconds, [low, high); the last bin's high is +inf
    int count = 0;
};

struct RefCheck {
    std::string source;           // "metadata line 1 ref_audio", "ref.wav", or "" (none: first usable clip)
    std::string path;             // as displayed
    bool present = false;
    bool decoded = false;
    double seconds = 0;
    int sample_rate = 0;
    int channels = 0;
    bool text_present = false;
    bool text_nonempty = false;
    std::string text;
};

struct CheckReport {
    std::string dir;
    double max_seconds = kDefaultMaxSeconds;
    int entries = 0;                 // metadata lines that parsed
    int usable = 0;
    double usable_seconds = 0;
    std::vector<Clip> clips;         // one per entry, in file order
    std::vector<HistogramBin> histogram;   // decoded clips by duration
    std::map<int, int> sample_rates;       // rate → decoded clips
    std::map<int, int> channel_counts;     // channels → decoded clips
    int missing = 0, undecodable = 0, over_max = 0, too_short = 0, silent = 0, clipped = 0, empty_text = 0,
        duplicates = 0, short_utterances = 0;
    RefCheck ref;
    std::vector<Problem> problems;   // errors, warnings and notes, in the order found
    std::optional<plan::Recommendation> recommendation;  // when trainable

    bool trainable() const;          // no Error
    int exit_code() const { return trainable() ? 0 : 2; }
    int count(Severity s) const;
    std::vector<const Clip*> usable_clips() const;
};

CheckReport check(const Dataset& ds, const CheckOptions& options = {});
// Dataset::load + check. A folder that does not exist is reported (exit 2), not thrown.
CheckReport check_dataset(const fs::path& dir, const CheckOptions& options = {});

nlohmann::json to_json(const CheckReport& r);
// The readable summary `dataset check` prints on stderr (no trailing newline).
std::string to_text(const CheckReport& r);

}  // namespace alexandria::dataset
