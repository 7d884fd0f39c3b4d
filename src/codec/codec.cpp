// The codec's public face: loading, encode, decode (chunked like the reference), streaming decode.
#include "alexandria/codec/codec.h"

#include <cmath>
#include <filesystem>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"

namespace alexandria::codec {

namespace fs = std::filesystem;

struct Codec::State {
    CodecModel model{nullptr};
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;
    std::string identity;
};

namespace {

std::string shape_of(const torch::Tensor& t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
}

// Config text, tensor table and the first and last bytes of every tensor: cheap to compute on a 680 MB file,
// and any checkpoint or random seed changes it.
std::string weights_identity(const std::string& config_text, const io::SafetensorsFile& file) {
    std::string key = config_text;
    for (const auto& t : file.tensors()) {
        key += fmt::format("\n{} {} {}", t.name, io::dtype_name(t.dtype), t.end - t.begin);
        for (auto d : t.shape) key += fmt::format(",{}", d);
        const uint64_t n = t.end - t.begin;
        const char* p = reinterpret_cast<const char*>(file.data(t));
        const uint64_t head = std::min<uint64_t>(n, 256);
        key.append(p, head);
        if (n > 256) key.append(p + n - std::min<uint64_t>(n - 256, 256), std::min<uint64_t>(n - 256, 256));
    }
    return "codec-" + io::hash_string(key);
}

void prime_codebooks(CodecModel& m) {
    torch::NoGradGuard no_grad;
    m->invalidate_codebooks();
    auto& q = m->encoder->quantizer;
    for (auto& cb : q->semantic_residual_vector_quantizer->codebooks) cb->embed();
    for (auto& cb : q->acoustic_residual_vector_quantizer->codebooks) cb->embed();
    for (auto& cb : m->decoder->quantizer->rvq_first->codebooks) cb->embedding();
    for (auto& cb : m->decoder->quantizer->rvq_rest->codebooks) cb->embedding();
}

// [B, 16, T] ids already on any device → InputError unless every id is in 0..2047.
void check_id_range(const torch::Tensor& codes, const char* what) {
    if (codes.dim() != 3 || codes.size(1) != kNumCodebooks)
        throw InputError(fmt::format("{}: expected [batch, {}, frames] ids (got shape {})", what, kNumCodebooks,
                                     shape_of(codes)));
    if (codes.is_floating_point() || codes.is_complex() || codes.scalar_type() == torch::kBool)
        throw InputError(fmt::format("{}: expected integer ids", what));
    if (codes.numel() == 0) return;
    int64_t lo = codes.min().item<int64_t>(), hi = codes.max().item<int64_t>();
    if (lo < 0 || hi >= kCodebookSize)
        throw InputError(fmt::format("{}: ids must be in 0..{} (found {})", what, kCodebookSize - 1, lo < 0 ? lo : hi));
}

}  // namespace

int64_t validate_codes(const torch::Tensor& codes, bool allow_padding, const std::string& what) {
    if (!codes.defined()) throw InputError(what + ": no codes");
    if (codes.dim() != 2 || codes.size(1) != kNumCodebooks)
        throw InputError(fmt::format("{}: expected [frames, {}] ids (got shape {}); the decoder needs exactly {} "
                                     "codebooks per frame",
                                     what, kNumCodebooks, shape_of(codes), kNumCodebooks));
    if (codes.is_floating_point() || codes.is_complex() || codes.scalar_type() == torch::kBool)
        throw InputError(fmt::format("{}: expected integer ids (got {})", what, c10::toString(codes.scalar_type())));
    auto c = codes.to(torch::kCPU, torch::kLong).contiguous();
    const int64_t* p = c.data_ptr<int64_t>();
    const int64_t frames = c.size(0);
    int64_t valid = frames;
    for (int64_t t = 0; t < frames; ++t) {
        int pads = 0;
        for (int q = 0; q < kNumCodebooks; ++q) {
            int64_t id = p[t * kNumCodebooks + q];
            if (id == -1 && allow_padding) {
                ++pads;
            } else if (id < 0 || id >= kCodebookSize) {
                throw InputError(fmt::format("{}: frame {}, codebook {}: id {} is outside 0..{}{}", what, t, q, id,
                                             kCodebookSize - 1, allow_padding ? " (or -1 padding)" : ""));
            }
        }
        if (pads == 0 && valid < frames)
            throw InputError(fmt::format("{}: frame {} follows -1 padding; padding must be whole trailing rows",
                                         what, t));
        if (pads > 0 && pads < kNumCodebooks)
            throw InputError(fmt::format("{}: frame {} is partly -1; padding must be whole trailing rows", what, t));
        if (pads == kNumCodebooks && valid == frames) valid = t;
    }
    return valid;
}

Codec Codec::load(const std::string& dir, torch::Device device, torch::Dtype dtype) {
    fs::path d(dir);
    if (fs::exists(d / "speech_tokenizer" / "config.json")) d /= "speech_tokenizer";
    if (!fs::is_directory(d)) throw InputError(fmt::format("{}: speech tokenizer folder not found", dir));
    const fs::path cfg_path = d / "config.json", weights = d / "model.safetensors";
    if (!fs::exists(cfg_path)) throw InputError(fmt::format("{}: missing (speech tokenizer config)", cfg_path.string()));
    if (!fs::exists(weights)) throw InputError(fmt::format("{}: missing (speech tokenizer weights)", weights.string()));
    const std::string cfg_text = io::read_file(cfg_path);
    CodecConfig cfg = CodecConfig::load(cfg_path.string());
    io::SafetensorsFile file(weights.string());
    CodecModel model(cfg, torch::TensorOptions().dtype(dtype).device(device));
    load_state(*model, file, model->decoder->kernel_weights("decoder."));
    model->decoder->prepare_cpu_kernels(&file, "decoder.");
    return from_model(model, device, dtype, weights_identity(cfg_text, file));
}

Codec Codec::from_model(CodecModel model, torch::Device device, torch::Dtype dtype, std::string identity) {
    Codec c;
    c.s_ = std::make_shared<State>();
    model->eval();
    for (auto& p : model->parameters()) p.set_requires_grad(false);
    prime_codebooks(model);
    model->decoder->prepare_cpu_kernels();  // made already where load() read the file
    c.s_->model = model;
    c.s_->device = device;
    c.s_->dtype = dtype;
    c.s_->identity = std::move(identity);
    return c;
}

const CodecConfig& Codec::config() const { return s_->model->config; }
CodecModel& Codec::model() const { return s_->model; }
torch::Device Codec::device() const { return s_->device; }
torch::Dtype Codec::dtype() const { return s_->dtype; }
const std::string& Codec::identity() const { return s_->identity; }

torch::Tensor Codec::encode(const std::vector<float>& wav) const {
    if (wav.empty()) throw InputError("audio: empty (0 samples); the encoder needs at least one sample");
    for (size_t i = 0; i < wav.size(); ++i)
        if (!std::isfinite(wav[i]))
            throw InputError(fmt::format("audio: sample {} ({:.3f} s) is not finite", i, double(i) / kSampleRate));
    torch::NoGradGuard no_grad;
    const int64_t n = int64_t(wav.size());
    auto x = torch::from_blob(const_cast<float*>(wav.data()), {1, 1, n}, torch::kFloat32)
                 .to(s_->device, s_->dtype, /*non_blocking=*/false, /*copy=*/true);
    auto codes = s_->model->encoder->forward(x);  // [1, 16, T]
    auto out = codes[0].transpose(0, 1).to(torch::kCPU, torch::kLong).contiguous();
    if (out.size(0) != frames_for_samples(n))
        throw Error(fmt::format("codec: encoder gave {} frames for {} samples (expected {})", out.size(0), n,
                                frames_for_samples(n)));
    return out;
}

torch::Tensor Codec::encode_file(const std::string& path) const {
    auto audio = io::read_audio_resampled(path, kSampleRate);
    try {
        return encode(audio.samples);
    } catch (const InputError& e) {
        throw InputError(path + ": " + e.what());
    }
}

torch::Tensor Codec::decode_unchunked(const torch::Tensor& codes) const {
    check_id_range(codes, "codes");
    torch::NoGradGuard no_grad;
    auto st = s_->model->decoder->new_state();
    return s_->model->decoder->forward(codes.to(s_->device, torch::kLong), st);
}

torch::Tensor Codec::decode_chunked(const torch::Tensor& codes, int64_t chunk, int64_t context) const {
    check_id_range(codes, "codes");
    if (chunk < 1 || context < 0) throw InputError("codec: chunk must be ≥ 1 and context ≥ 0");
    torch::NoGradGuard no_grad;
    auto c = codes.to(s_->device, torch::kLong);
    const int64_t total = c.size(2);
    auto& dec = s_->model->decoder;
    std::vector<torch::Tensor> parts;
    for (int64_t start = 0, end = 0; start < total; start = end) {
        end = std::min(start + chunk, total);
        // The reference's rule, literally: context only when start − context > 0.
        const int64_t ctx = start - context > 0 ? context : start;
        auto st = dec->new_state();
        auto wav = dec->forward(c.narrow(2, start - ctx, end - start + ctx), st);
        parts.push_back(wav.narrow(2, ctx * kSamplesPerFrame, (end - start) * kSamplesPerFrame));
    }
    if (parts.empty()) return torch::zeros({c.size(0), 1, 0}, torch::TensorOptions().dtype(s_->dtype).device(s_->device));
    return parts.size() == 1 ? parts[0] : torch::cat(parts, 2);
}

namespace {
std::vector<float> to_vector(const torch::Tensor& wav) {
    auto w = wav.reshape({-1}).to(torch::kCPU, torch::kFloat32).contiguous();
    return std::vector<float>(w.data_ptr<float>(), w.data_ptr<float>() + w.numel());
}
}  // namespace

std::vector<float> Codec::decode(const torch::Tensor& codes) const {
    const int64_t valid = validate_codes(codes, true, "codes");
    if (valid == 0) return {};
    // Padding decodes as id 0 in the reference and its samples are cut; with a causal decoder and chunk starts
    // that do not depend on the length, decoding only the valid frames gives the same kept samples.
    auto c = codes.narrow(0, 0, valid).to(torch::kLong).transpose(0, 1).unsqueeze(0);
    return to_vector(decode_chunked(c));
}

std::vector<std::vector<float>> Codec::decode_batch(const torch::Tensor& codes) const {
    if (!codes.defined() || codes.dim() != 3 || codes.size(2) != kNumCodebooks)
        throw InputError(fmt::format("codes: expected [batch, frames, {}] ids (got shape {})", kNumCodebooks,
                                     codes.defined() ? shape_of(codes) : "none"));
    std::vector<int64_t> valid;
    for (int64_t b = 0; b < codes.size(0); ++b)
        valid.push_back(validate_codes(codes[b], true, fmt::format("codes[{}]", b)));
    std::vector<std::vector<float>> out(size_t(codes.size(0)));
    if (codes.size(0) == 0 || codes.size(1) == 0) return out;
    auto wav = decode_chunked(codes.to(torch::kLong).clamp_min(0).transpose(1, 2));
    for (int64_t b = 0; b < codes.size(0); ++b)
        out[size_t(b)] = to_vector(wav[b].narrow(-1, 0, valid[size_t(b)] * kSamplesPerFrame));
    return out;
}

IncrementalDecoder::IncrementalDecoder(Codec codec) : codec_(std::move(codec)) { reset(); }

void IncrementalDecoder::reset() {
    state_ = codec_.model()->decoder->new_state();
    recent_ = torch::Tensor();
    frames_ = 0;
}

std::vector<float> IncrementalDecoder::run(const torch::Tensor& codes, bool keep) {
    auto wav = codec_.model()->decoder->forward(codes, state_);
    return keep ? to_vector(wav) : std::vector<float>{};
}

std::vector<float> IncrementalDecoder::push(const torch::Tensor& frames) {
    auto f = frames.defined() && frames.dim() == 1 ? frames.unsqueeze(0) : frames;
    validate_codes(f, false, "frames");
    const int64_t n = f.size(0);
    std::vector<float> out;
    if (n == 0) return out;
    out.reserve(size_t(n * kSamplesPerFrame));
    torch::NoGradGuard no_grad;
    auto codes = f.to(torch::kLong).transpose(0, 1).unsqueeze(0).to(codec_.device());  // [1, 16, n]
    for (int64_t off = 0; off < n;) {
        if (frames_ > 0 && frames_ % kDecodeChunkFrames == 0) {
            // A new reference chunk: fresh state, primed with the left context whose output the reference drops.
            state_ = codec_.model()->decoder->new_state();
            const int64_t ctx = frames_ - kDecodeContextFrames > 0 ? kDecodeContextFrames : frames_;
            run(recent_.narrow(2, recent_.size(2) - ctx, ctx), false);
        }
        const int64_t m = std::min(n - off, kDecodeChunkFrames - frames_ % kDecodeChunkFrames);
        auto piece = codes.narrow(2, off, m);
        auto wav = run(piece, true);
        out.insert(out.end(), wav.begin(), wav.end());
        recent_ = recent_.defined() ? torch::cat({recent_, piece}, 2) : piece;
        if (recent_.size(2) > kDecodeContextFrames)
            recent_ = recent_.narrow(2, recent_.size(2) - kDecodeContextFrames, kDecodeContextFrames).clone();
        frames_ += m;
        off += m;
    }
    return out;
}

}  // namespace alexandria::codec
