#include "alexandria/io/audio.h"

#include <fmt/format.h>
#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace alexandria::io {
namespace {

struct SndFile {
    SNDFILE* f = nullptr;
    SF_INFO info{};
    ~SndFile() {
        if (f) sf_close(f);
    }
};

std::string describe_format(int format) {
    SF_FORMAT_INFO fi{};
    std::string major = "?", sub = "?";
    fi.format = format & SF_FORMAT_TYPEMASK;
    if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) == 0 && fi.extension) major = fi.extension;
    fi = SF_FORMAT_INFO{};
    fi.format = format & SF_FORMAT_SUBMASK;
    if (sf_command(nullptr, SFC_GET_FORMAT_INFO, &fi, sizeof(fi)) == 0 && fi.name) sub = fi.name;
    return major + " " + sub;
}

// libsndfile quietly shortens a WAV whose data chunk runs past the end of the file, so a copy cut short (an
// interrupted download or sync) would decode as a shorter clip whose transcript no longer matches. Walk the RIFF
// chunks and compare the data chunk's declared size with the bytes that are there. "" when whole (or not a WAV).
std::string wav_truncation(const std::string& path) {
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    if (ec || size < 12) return "";
    std::ifstream f(path, std::ios::binary);
    char hdr[12];
    if (!f.read(hdr, 12)) return "";
    if (std::memcmp(hdr, "RIFF", 4) != 0 || std::memcmp(hdr + 8, "WAVE", 4) != 0) return "";
    uint64_t pos = 12;
    for (int chunks = 0; chunks < 4096 && pos + 8 <= size; ++chunks) {
        unsigned char ch[8];
        f.seekg(std::streamoff(pos));
        if (!f.read(reinterpret_cast<char*>(ch), 8)) return "";
        const uint64_t len = uint64_t(ch[4]) | uint64_t(ch[5]) << 8 | uint64_t(ch[6]) << 16 | uint64_t(ch[7]) << 24;
        if (std::memcmp(ch, "data", 4) == 0) {
            const uint64_t avail = size - (pos + 8);
            // 0 and 0xFFFFFFFF: streaming writers that never came back to fill the size in
            if (len != 0 && len != 0xFFFFFFFFu && len > avail)
                return fmt::format("truncated: the WAV header declares {} bytes of audio, the file holds {}", len, avail);
            return "";
        }
        pos += 8 + len + (len & 1);
    }
    return "";
}

void open_for_read(const std::string& path, SndFile& s) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw InputError(fmt::format("{}: audio file not found", path));
    if (fs::is_directory(path, ec)) throw InputError(fmt::format("{}: is a directory, expected an audio file", path));
    s.f = sf_open(path.c_str(), SFM_READ, &s.info);
    if (!s.f) throw InputError(fmt::format("{}: cannot decode audio: {}", path, sf_strerror(nullptr)));
    if (s.info.channels <= 0 || s.info.samplerate <= 0)
        throw InputError(fmt::format("{}: invalid audio header ({} channels, {} Hz)", path, s.info.channels, s.info.samplerate));
}

}  // namespace

AudioFileInfo probe_audio(const std::string& path) {
    SndFile s;
    open_for_read(path, s);
    return {s.info.samplerate, s.info.channels, int64_t(s.info.frames), describe_format(s.info.format),
            wav_truncation(path)};
}

Audio read_audio(const std::string& path) {
    SndFile s;
    open_for_read(path, s);
    if (auto t = wav_truncation(path); !t.empty()) throw InputError(fmt::format("{}: {}", path, t));
    if (s.info.frames <= 0) throw InputError(fmt::format("{}: contains no audio (0 samples)", path));
    if (double(s.info.frames) / s.info.samplerate > 4 * 3600.0)
        throw InputError(fmt::format("{}: longer than 4 hours ({} frames at {} Hz); refusing to load", path,
                                     s.info.frames, s.info.samplerate));
    // Decoded in blocks and mixed down as it goes, so memory follows the audio that is really there, not what a
    // (possibly corrupt) header declares.
    const int ch = s.info.channels;
    const sf_count_t block = std::max<sf_count_t>(1, (1 << 16) / ch);
    std::vector<float> inter(size_t(block) * ch);
    Audio a;
    a.sample_rate = s.info.samplerate;
    a.samples.reserve(size_t(std::min<sf_count_t>(s.info.frames, sf_count_t(1) << 24)));
    while (sf_count_t(a.samples.size()) < s.info.frames) {
        const sf_count_t want = std::min<sf_count_t>(block, s.info.frames - sf_count_t(a.samples.size()));
        const sf_count_t got = sf_readf_float(s.f, inter.data(), want);
        if (got <= 0) break;
        for (sf_count_t i = 0; i < got; ++i) {
            float acc = 0;
            for (int c = 0; c < ch; ++c) acc += inter[size_t(i) * ch + c];
            const float v = acc / float(ch);
            if (!std::isfinite(v))
                throw InputError(fmt::format("{}: sample {} is not a finite number (NaN or infinity)", path,
                                             a.samples.size()));
            a.samples.push_back(v);
        }
    }
    const auto got = sf_count_t(a.samples.size());
    if (got == 0) throw InputError(fmt::format("{}: cannot decode audio data: {}", path, sf_strerror(s.f)));
    // MP3 headers only estimate the length; every other format declares it exactly.
    const bool estimated = (s.info.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_MPEG;
    if (got < s.info.frames && !(estimated && got >= s.info.frames - s.info.frames / 100))
        throw InputError(fmt::format("{}: truncated: the header declares {} frames, only {} decode", path,
                                     s.info.frames, got));
    return a;
}

std::vector<float> resample(const std::vector<float>& in, int from_rate, int to_rate) {
    if (from_rate == to_rate || in.empty()) return in;
    if (from_rate <= 0 || to_rate <= 0) throw InputError(fmt::format("invalid sample rates {} → {}", from_rate, to_rate));
    size_t out_len = size_t(std::llround(double(in.size()) * to_rate / from_rate));
    // librosa.resample (the reference's loader, fix=True) pads soxr's round(n·r) samples with zeros to
    // ceil(n·r), computed as ceil(n * (to / from)) in doubles; stopping at round(n·r) would make the last frame's
    // codes of a 44.1/22.05/32 kHz input differ from the reference's whenever n·r rounds down.
    const size_t fixed_len = size_t(std::ceil(double(in.size()) * (double(to_rate) / double(from_rate))));
    std::vector<float> out(out_len + 16);
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    size_t odone = 0;
    soxr_error_t err = soxr_oneshot(from_rate, to_rate, 1, in.data(), in.size(), nullptr, out.data(), out.size(), &odone,
                                    &io, &q, nullptr);
    if (err) throw Error(fmt::format("resampling {} → {} Hz failed: {}", from_rate, to_rate, err));
    out.resize(std::min(odone, out_len));
    out.resize(fixed_len, 0.0f);
    return out;
}

Audio read_audio_resampled(const std::string& path, int rate) {
    Audio a = read_audio(path);
    if (a.sample_rate != rate) {
        a.samples = resample(a.samples, a.sample_rate, rate);
        a.sample_rate = rate;
    }
    return a;
}

AudioFormat parse_audio_format(const std::string& s) {
    if (s == "pcm16" || s == "wav") return AudioFormat::WavPcm16;
    if (s == "float32" || s == "f32") return AudioFormat::WavFloat;
    if (s == "flac") return AudioFormat::Flac;
    throw InputError(fmt::format("unknown audio format '{}' (expected pcm16, float32 or flac)", s));
}

namespace {
// One float → 16-bit rule for every 16-bit output (WAV, FLAC, raw PCM on stdout), so that a streamed line's bytes
// are its file's samples: clipped to [-1, 1], × 32767, rounded to nearest. (libsndfile's own conversion, with
// clipping on, rounds down instead: 1.2.0 gives -3 for -2.2/32768.)
std::vector<int16_t> to_pcm16(const std::vector<float>& samples) {
    std::vector<int16_t> out(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) {
        const float v = std::max(-1.0f, std::min(1.0f, samples[i]));
        out[i] = int16_t(std::lrint(v * 32767.0f));
    }
    return out;
}
}  // namespace

void write_audio(const std::string& path, const Audio& audio, AudioFormat format) {
    SF_INFO info{};
    info.samplerate = audio.sample_rate;
    info.channels = 1;
    switch (format) {
        case AudioFormat::WavPcm16: info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16; break;
        case AudioFormat::WavFloat: info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT; break;
        case AudioFormat::Flac: info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16; break;
    }
    write_atomic(path, [&](const fs::path& tmp) {
        SNDFILE* f = sf_open(tmp.c_str(), SFM_WRITE, &info);
        if (!f) throw Error(fmt::format("{}: cannot write audio: {}", path, sf_strerror(nullptr)));
        sf_count_t n = 0;
        if (format == AudioFormat::WavFloat) {
            n = sf_writef_float(f, audio.samples.data(), sf_count_t(audio.samples.size()));
        } else {
            const std::vector<int16_t> pcm = to_pcm16(audio.samples);
            n = sf_writef_short(f, pcm.data(), sf_count_t(pcm.size()));
        }
        int rc = sf_close(f);
        if (n != sf_count_t(audio.samples.size()) || rc != 0) throw Error(fmt::format("{}: short write", path));
    });
}

void write_pcm16_raw(std::FILE* out, const std::vector<float>& samples) {
    const std::vector<int16_t> buf = to_pcm16(samples);
    if (std::fwrite(buf.data(), sizeof(int16_t), buf.size(), out) != buf.size())
        throw Error("writing raw PCM to the output stream failed");
}

AudioStats audio_stats(const Audio& audio) {
    AudioStats st;
    const auto& x = audio.samples;
    st.seconds = audio.seconds();
    if (x.empty()) return st;
    double sum2 = 0;
    size_t clipped = 0;
    for (float v : x) {
        double a = std::fabs(v);
        st.peak = std::max(st.peak, a);
        sum2 += a * a;
        if (a >= 0.999) ++clipped;
    }
    st.rms = std::sqrt(sum2 / double(x.size()));
    st.clipped_fraction = double(clipped) / double(x.size());
    const double thr = 0.00316;  // -50 dBFS
    size_t first = 0;
    while (first < x.size() && std::fabs(x[first]) < thr) ++first;
    size_t last = x.size();
    while (last > first && std::fabs(x[last - 1]) < thr) --last;
    st.leading_silence = double(first) / audio.sample_rate;
    st.trailing_silence = double(x.size() - last) / audio.sample_rate;
    return st;
}

}  // namespace alexandria::io
