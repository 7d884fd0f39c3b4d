#include "alexandria/eval/metrics.h"

#include <algorithm>
#include <cmath>

namespace alexandria::eval {

namespace {

// Decodes one UTF-8 code point at s[i], advancing i; invalid bytes count as one code point each (they are text the
// user wrote; whether they are "spoken" does not matter for a rate).
uint32_t next_code_point(const std::string& s, size_t& i) {
    auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) {
        ++i;
        return 0xFFFD;
    }
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) {
        auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xC0) != 0x80) {
            ++i;
            return 0xFFFD;
        }
        cp = (cp << 6) | (c & 0x3F);
    }
    i += len;
    return cp;
}

bool is_space(uint32_t cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000 || cp == 0xFEFF;
}

bool is_punct(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
                          (cp >= 0x7B && cp <= 0x7E);
    if (cp == 0xA1 || cp == 0xAB || cp == 0xB7 || cp == 0xBB || cp == 0xBF) return true;
    if (cp >= 0x2000 && cp <= 0x206F) return true;
    if (cp >= 0x3000 && cp <= 0x303F) return true;
    if (cp >= 0xFF01 && cp <= 0xFF0F) return true;
    if ((cp >= 0xFF1A && cp <= 0xFF20) || (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65))
        return true;
    return false;
}

double ratio_or_nan(double a, double b) { return (b > 0 && std::isfinite(a) && std::isfinite(b)) ? a / b : kNaN; }

}  // namespace

int64_t spoken_characters(const std::string& utf8) {
    int64_t n = 0;
    size_t i = 0;
    while (i < utf8.size()) {
        uint32_t cp = next_code_point(utf8, i);
        if (!is_space(cp) && !is_punct(cp)) ++n;
    }
    return n;
}

double speech_seconds(const io::AudioStats& s) {
    if (s.silent()) return 0.0;
    return std::max(0.0, s.seconds - s.leading_silence - s.trailing_silence);
}

double speaking_rate(int64_t characters, double speech_seconds) {
    if (!(speech_seconds > 0) || characters <= 0) return kNaN;
    return static_cast<double>(characters) / speech_seconds;
}

double speaking_rate(const std::string& text, double seconds) { return speaking_rate(spoken_characters(text), seconds); }

PooledRate pooled_rate(const std::vector<RateSample>& samples) {
    PooledRate r;
    for (const auto& s : samples) {
        if (!(s.speech_seconds > 0) || s.characters <= 0) continue;
        r.characters += s.characters;
        r.speech_seconds += s.speech_seconds;
        ++r.clips;
    }
    r.chars_per_second = ratio_or_nan(static_cast<double>(r.characters), r.speech_seconds);
    return r;
}

double cosine_similarity(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.empty() || a.size() != b.size()) return kNaN;
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        dot += double(a[i]) * double(b[i]);
        na += double(a[i]) * double(a[i]);
        nb += double(b[i]) * double(b[i]);
    }
    if (!(na > 0) || !(nb > 0)) return kNaN;
    // Rounding can push identical vectors a hair past 1.
    return std::clamp(dot / std::sqrt(na * nb), -1.0, 1.0);
}

bool is_clipped(const io::AudioStats& s) { return s.clipped_fraction > kMaxClippedFraction; }

DurationCheck duration_check(int64_t characters, double speech, double dataset_rate) {
    DurationCheck d;
    if (characters <= 0 || !(dataset_rate > 0) || !std::isfinite(dataset_rate)) return d;
    d.expected_seconds = static_cast<double>(characters) / dataset_rate;
    d.ratio = speech / d.expected_seconds;
    const bool off_ratio = d.ratio < kDurationRatioLow || d.ratio > kDurationRatioHigh;
    d.outlier = off_ratio && std::abs(speech - d.expected_seconds) > kDurationSlackSeconds;
    return d;
}

void measure_audio(OutputCheck& c, const io::AudioStats& st, double dataset_rate) {
    c.seconds = st.seconds;
    c.peak = st.peak;
    c.rms = st.rms;
    c.clipped_fraction = st.clipped_fraction;
    c.silent = st.silent();
    c.clipped = is_clipped(st);
    c.speech_seconds = speech_seconds(st);
    c.rate = speaking_rate(c.characters, c.speech_seconds);
    c.duration = duration_check(c.characters, c.speech_seconds, dataset_rate);
}

namespace {

constexpr double kNucleusRangeDb = 25, kNucleusDipDb = 2, kSilenceBelowPeakDb = 40;

// Energy in dB per 10 ms hop of samples [begin, end).
std::vector<double> hop_energy_db(const std::vector<float>& s, int sample_rate, size_t begin, size_t end) {
    const size_t hop = static_cast<size_t>(std::max(1, sample_rate / 100));
    std::vector<double> e;
    for (size_t i = begin; i + hop <= end && i + hop <= s.size(); i += hop) {
        double acc = 0;
        for (size_t k = i; k < i + hop; ++k) acc += double(s[k]) * double(s[k]);
        e.push_back(10 * std::log10(acc / double(hop) + 1e-12));
    }
    return e;
}

std::vector<double> smooth5(const std::vector<double>& e) {
    std::vector<double> out(e.size());
    for (size_t i = 0; i < e.size(); ++i) {
        double acc = 0;
        int n = 0;
        for (size_t j = i >= 2 ? i - 2 : 0; j <= i + 2 && j < e.size(); ++j, ++n) acc += e[j];
        out[i] = acc / n;
    }
    return out;
}

}  // namespace

double syllable_rate(const std::vector<float>& samples, int sample_rate, size_t begin, size_t end) {
    end = std::min(end, samples.size());
    if (sample_rate <= 0 || end <= begin) return kNaN;
    const std::vector<double> env = smooth5(hop_energy_db(samples, sample_rate, begin, end));
    if (env.size() < 3) return kNaN;
    const double loudest = *std::max_element(env.begin(), env.end());
    int nuclei = 0;
    double last_peak = -std::numeric_limits<double>::infinity(), dip = std::numeric_limits<double>::infinity();
    for (size_t i = 1; i + 1 < env.size(); ++i) {
        dip = std::min(dip, env[i]);
        const bool peak = env[i] > env[i - 1] && env[i] >= env[i + 1] && env[i] >= loudest - kNucleusRangeDb;
        if (!peak) continue;
        if (env[i] - dip >= kNucleusDipDb && (nuclei == 0 || last_peak - dip >= kNucleusDipDb)) {
            ++nuclei;
            last_peak = env[i];
            dip = env[i];
        } else if (env[i] > last_peak) {
            last_peak = env[i];  // the same nucleus, louder: no dip in between
            dip = env[i];
        }
    }
    return nuclei / (double(end - begin) / sample_rate);
}

ThirdsRate thirds_rate(const std::vector<float>& samples, int sample_rate) {
    ThirdsRate t;
    if (sample_rate <= 0) return t;
    const std::vector<double> e = hop_energy_db(samples, sample_rate, 0, samples.size());
    if (e.empty()) return t;
    const double loudest = *std::max_element(e.begin(), e.end());
    size_t first = 0, last = e.size();
    while (first < last && e[first] < loudest - kSilenceBelowPeakDb) ++first;
    while (last > first && e[last - 1] < loudest - kSilenceBelowPeakDb) --last;
    const size_t hop = static_cast<size_t>(std::max(1, sample_rate / 100));
    const size_t b = first * hop, n = (last - first) * hop;
    if (double(n) / sample_rate < kThirdsMinSeconds) return t;
    t.first = syllable_rate(samples, sample_rate, b, b + n / 3);
    t.last = syllable_rate(samples, sample_rate, b + n - n / 3, b + n);
    return t;
}

GenerationSummary summarize(const std::vector<OutputCheck>& outputs, double dataset_rate) {
    GenerationSummary g;
    std::vector<RateSample> rates;
    double sim_sum = 0, drift_sum = 0;
    for (const auto& o : outputs) {
        ++g.outputs;
        g.compute_seconds += o.compute_seconds;
        if (o.failed) {
            ++g.failed;
            continue;
        }
        g.audio_seconds += o.seconds;
        (o.hit_cap ? g.runaway : g.eos)++;
        if (o.kind == "short") {
            ++g.short_outputs;
            if (o.hit_cap) ++g.short_runaway;
        } else {
            ++g.long_outputs;
            if (o.hit_cap) ++g.long_runaway;
        }
        if (o.silent) ++g.silent;
        if (o.clipped) ++g.clipped;
        // A runaway is long by construction and already counted as one.
        if (o.duration.outlier && !o.hit_cap) ++g.duration_outliers;
        if (!o.hit_cap && !o.silent) rates.push_back({o.characters, o.speech_seconds});
        if (std::isfinite(o.thirds.first) && std::isfinite(o.thirds.last) && o.thirds.first > 0) {
            drift_sum += o.thirds.last / o.thirds.first;
            ++g.thirds_outputs;
        }
        if (o.similarity && std::isfinite(*o.similarity)) {
            double s = *o.similarity;
            sim_sum += s;
            g.similarity_min = g.similarity_count == 0 ? s : std::min(g.similarity_min, s);
            g.similarity_max = g.similarity_count == 0 ? s : std::max(g.similarity_max, s);
            ++g.similarity_count;
        }
    }
    const int done = g.eos + g.runaway;
    g.eos_rate = done > 0 ? double(g.eos) / done : kNaN;
    g.runaway_rate = done > 0 ? double(g.runaway) / done : kNaN;
    g.short_runaway_rate = g.short_outputs > 0 ? double(g.short_runaway) / g.short_outputs : kNaN;
    g.long_runaway_rate = g.long_outputs > 0 ? double(g.long_runaway) / g.long_outputs : kNaN;
    g.rate = pooled_rate(rates);
    g.rate_ratio = ratio_or_nan(g.rate.chars_per_second, dataset_rate);
    if (g.similarity_count > 0) g.similarity_mean = sim_sum / g.similarity_count;
    if (g.thirds_outputs > 0) g.thirds_drift = drift_sum / g.thirds_outputs;
    return g;
}

}  // namespace alexandria::eval
