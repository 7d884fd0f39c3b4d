#pragma once
// Audio files: read anything libsndfile reads, mono by averaging channels, 24 kHz via soxr (high quality),
// write WAV (PCM16 default, float32) or FLAC atomically; per-clip statistics.
#include <cstdint>
#include <string>
#include <vector>

namespace alexandria::io {

constexpr int kModelSampleRate = 24000;

struct Audio {
    std::vector<float> samples;  // mono
    int sample_rate = kModelSampleRate;
    double seconds() const { return sample_rate > 0 ? double(samples.size()) / sample_rate : 0.0; }
};

struct AudioFileInfo {
    int sample_rate = 0;
    int channels = 0;
    int64_t frames = 0;
    std::string format;  // e.g. "WAV PCM_16"
    std::string truncated;  // why the file is cut short ("truncated: the WAV header declares ..."); "" when whole
};

// Header only (fast), plus the WAV chunk walk that detects a file cut short (libsndfile would silently decode the
// shorter clip). InputError naming the file when libsndfile cannot open it.
AudioFileInfo probe_audio(const std::string& path);
// Decodes, downmixes to mono. InputError on unreadable files, zero-length audio, non-finite samples, and truncated
// files: a WAV whose data chunk declares more bytes than the file holds, or any file that decodes fewer frames than
// its header declares (MP3, whose length is an estimate, may fall 1% short).
Audio read_audio(const std::string& path);
// read_audio + resample to `rate` (soxr HQ) when needed.
Audio read_audio_resampled(const std::string& path, int rate = kModelSampleRate);
std::vector<float> resample(const std::vector<float>& in, int from_rate, int to_rate);

enum class AudioFormat { WavPcm16, WavFloat, Flac };
AudioFormat parse_audio_format(const std::string& s);  // "pcm16" | "float32" | "flac"; InputError otherwise
void write_audio(const std::string& path, const Audio& audio, AudioFormat format = AudioFormat::WavPcm16);
// Raw little-endian PCM16 to an open stream (for `--out -`).
void write_pcm16_raw(std::FILE* out, const std::vector<float>& samples);

struct AudioStats {
    double seconds = 0;
    double peak = 0;             // max |x|
    double rms = 0;
    double clipped_fraction = 0; // samples with |x| >= 0.999
    double leading_silence = 0;  // seconds below -50 dBFS at the start
    double trailing_silence = 0;
    bool silent() const { return peak < 0.00316; }  // below -50 dBFS everywhere
};
AudioStats audio_stats(const Audio& audio);

}  // namespace alexandria::io
