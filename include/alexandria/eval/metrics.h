#pragma once
// The measurements `alexandria eval` makes on generated speech, as pure functions of text, audio statistics and
// speaker vectors, so each is tested on crafted cases with a known answer (issue 9; field survey §4, §6.2-6.3).
//
//   speaking rate      spoken characters / seconds of speech (the clip minus its leading and trailing silence,
//                      io::audio_stats's −50 dBFS rule), pooled as Σ characters / Σ seconds over clips so that a
//                      handful of one-word clips cannot dominate the figure
//   speaker similarity cosine of two speaker-encoder vectors
//   EOS / runaway      a generation either ended on its own (EOS) or stopped at the frame cap (runaway)
//   duration outlier   speech much longer or shorter than the text's length at the dataset's own rate
//   silent / clipped   io::AudioStats::silent(); more than 1 % of samples at full scale (the survey's clip rule)
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "alexandria/io/audio.h"

namespace alexandria::eval {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Thresholds, with where they come from.
constexpr double kMaxClippedFraction = 0.01;  // field survey §6.6: clipping > 1 % flags a clip
constexpr double kRateRatioLow = 0.90;        // field survey §6.3: speaking-rate ratio 0.90-1.15 is normal
constexpr double kRateRatioHigh = 1.15;       //   above: "fast/rushed speech"
constexpr double kThirdsMinSeconds = 6.0;     // outputs with this much speech get a speaking rate per third
// A duration is an outlier when speech/expected is outside [0.5, 2] AND differs by more than 0.75 s (so "Oh!",
// whose expected 0.2 s is shorter than any real "Oh!", is not flagged for lasting 0.5 s). Our choice: the
// survey names the ratio, not its bounds.
constexpr double kDurationRatioLow = 0.5;
constexpr double kDurationRatioHigh = 2.0;
constexpr double kDurationSlackSeconds = 0.75;

// Code points that are spoken: everything except whitespace and punctuation (ASCII punctuation, Latin-1 ¡ « · » ¿,
// General Punctuation U+2000-U+206F, CJK symbols and punctuation U+3000-U+303F, fullwidth ASCII punctuation).
int64_t spoken_characters(const std::string& utf8);

// Seconds of speech in a clip: its length minus leading and trailing silence; 0 for a silent clip.
double speech_seconds(const io::AudioStats& s);

// Characters per second of speech; NaN when there is no speech to measure.
double speaking_rate(int64_t characters, double speech_seconds);
double speaking_rate(const std::string& text, double speech_seconds);

struct RateSample {
    int64_t characters = 0;
    double speech_seconds = 0;
};
struct PooledRate {
    double chars_per_second = kNaN;  // Σ characters / Σ speech seconds (NaN without any speech)
    int64_t characters = 0;
    double speech_seconds = 0;
    int clips = 0;                   // samples that had speech
};
// Samples without speech (speech_seconds <= 0) are left out.
PooledRate pooled_rate(const std::vector<RateSample>& samples);

// Cosine similarity; NaN when either vector is empty, they differ in length, or one is all zeros.
double cosine_similarity(const std::vector<float>& a, const std::vector<float>& b);

bool is_clipped(const io::AudioStats& s);

struct DurationCheck {
    double expected_seconds = kNaN;  // characters / dataset rate
    double ratio = kNaN;             // speech seconds / expected
    bool outlier = false;
};
DurationCheck duration_check(int64_t characters, double speech_seconds, double dataset_rate);

// The speaking rate of a stretch of audio, acoustically (no transcript alignment needed): syllable nuclei, i.e.
// peaks of the 10 ms energy envelope (smoothed over 50 ms) within 25 dB of the stretch's loudest that rise at least
// 2 dB above the dip since the previous nucleus, per second. Samples [begin, end) of a mono clip.
double syllable_rate(const std::vector<float>& samples, int sample_rate, size_t begin, size_t end);

// A long output's speech (leading and trailing silence cut) in three equal stretches: the first's and the last's
// syllable rate, so a drift over the line is visible (the streaming text layout speeds up: issue 14). NaN for
// outputs with less than kThirdsMinSeconds of speech.
struct ThirdsRate {
    double first = kNaN, last = kNaN;  // syllables per second
};
ThirdsRate thirds_rate(const std::vector<float>& samples, int sample_rate);

// One generated utterance, measured.
struct OutputCheck {
    std::string prompt_id;
    std::string kind;           // "short" | "sentence" | "paragraph" (prompts.h)
    uint64_t seed = 0;
    int64_t characters = 0;     // spoken characters of the prompt
    bool failed = false;        // generation threw; `error` says why; nothing else is measured
    std::string error;
    int64_t frames = 0, frame_cap = 0;
    bool hit_cap = false;       // runaway: no EOS within the cap
    double seconds = 0, speech_seconds = 0, peak = 0, rms = 0, clipped_fraction = 0;
    bool silent = false, clipped = false;
    double rate = kNaN;         // characters / speech seconds
    ThirdsRate thirds;          // syllables/s in the first and last third of the speech (long outputs)
    DurationCheck duration;
    std::optional<double> similarity;  // to the reference's speaker vector (absent: not measurable)
    std::string wav;            // where the audio was written ("" = not written)
    double compute_seconds = 0;
};

// Fills the audio-derived fields of `c` (seconds ... duration) from the clip's statistics.
void measure_audio(OutputCheck& c, const io::AudioStats& stats, double dataset_rate);

struct GenerationSummary {
    int outputs = 0, failed = 0;
    int eos = 0, runaway = 0;                     // generations that ended on EOS / hit the cap
    double eos_rate = kNaN, runaway_rate = kNaN;  // over generations that did not fail
    // The seed separates "short texts hang" from "no EOS": runaways among short prompts / among the others.
    int short_outputs = 0, short_runaway = 0, long_outputs = 0, long_runaway = 0;
    double short_runaway_rate = kNaN, long_runaway_rate = kNaN;
    PooledRate rate;                              // over outputs that ended on EOS and are not silent
    double rate_ratio = kNaN;                     // rate / dataset rate
    int similarity_count = 0;
    double similarity_mean = kNaN, similarity_min = kNaN, similarity_max = kNaN;
    int silent = 0, clipped = 0, duration_outliers = 0;  // outliers among the outputs that ended on EOS
    int thirds_outputs = 0;                       // outputs with a rate per third
    double thirds_drift = kNaN;                   // mean of last-third / first-third rate over them (1 = steady)
    double compute_seconds = 0, audio_seconds = 0;
};
GenerationSummary summarize(const std::vector<OutputCheck>& outputs, double dataset_rate);

}  // namespace alexandria::eval
