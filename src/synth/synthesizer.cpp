#include "alexandria/synth/synthesizer.h"

#include <cctype>
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/model_location.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/io/strings.h"
#include "alexandria/model/speaker_encoder.h"
#include "alexandria/text/prompt.h"

namespace alexandria::synth {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// A line's failure as one message: libtorch's errors carry a C++ backtrace in what(), which is no use to a user.
std::string error_text(const std::exception& e) {
    if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
    return e.what();
}
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

std::vector<float> trim_reference(const std::vector<float>& wav, int64_t ref_frames, int64_t total_frames) {
    if (ref_frames <= 0) return wav;
    // int(ref_len / max(total_len, 1) * wav_len), in double precision as Python computes it.
    double frac = static_cast<double>(ref_frames) / static_cast<double>(std::max<int64_t>(total_frames, 1));
    auto cut = static_cast<size_t>(std::max(0.0, std::floor(frac * static_cast<double>(wav.size()))));
    if (cut >= wav.size()) return {};
    return std::vector<float>(wav.begin() + static_cast<std::ptrdiff_t>(cut), wav.end());
}

torch::Tensor read_speaker_embedding(const std::string& path) {
    io::SafetensorsFile f(path);
    std::vector<std::string> names;
    for (const auto& t : f.tensors()) names.push_back(t.name);
    if (names.empty()) throw InputError(fmt::format("{}: holds no tensor", path));
    std::string name = names.front();
    for (const auto& n : names)
        if (n == "speaker_embedding") name = n;
    if (names.size() > 1 && name != "speaker_embedding")
        throw InputError(fmt::format("{}: several tensors and none named 'speaker_embedding'", path));
    auto t = f.view(name).to(torch::kFloat32).reshape({-1}).clone();
    if (!torch::isfinite(t).all().item<bool>()) throw InputError(fmt::format("{}: non-finite speaker vector", path));
    return t;
}

AudioStream::AudioStream(const codec::Codec& codec, int64_t block, int64_t first)
    : dec_(codec), block_(block), first_(first) {
    if (block < 1 || first < 1) throw Error("AudioStream: a block must hold at least one frame");
}

std::vector<float> AudioStream::push(const torch::Tensor& frames) {
    std::vector<float> out;
    auto f = frames.to(torch::kCPU, torch::kLong);
    for (int64_t off = 0; off < f.size(0);) {
        const int64_t m = std::min(f.size(0) - off, next_block() - pending_frames_);
        pending_.push_back(f.narrow(0, off, m));
        pending_frames_ += m;
        off += m;
        if (pending_frames_ == next_block()) {
            auto wav = dec_.push(torch::cat(pending_));
            out.insert(out.end(), wav.begin(), wav.end());
            pending_.clear();
            pending_frames_ = 0;
        }
    }
    return out;
}

std::vector<float> AudioStream::finish() {
    if (pending_frames_ == 0) return {};
    auto wav = dec_.push(torch::cat(pending_));
    pending_.clear();
    pending_frames_ = 0;
    return wav;
}

std::vector<float> decode_in_blocks(const codec::Codec& codec, const torch::Tensor& codes, int64_t block,
                                    int64_t first) {
    AudioStream st(codec, block, first);
    auto out = st.push(codes);
    auto rest = st.finish();
    out.insert(out.end(), rest.begin(), rest.end());
    return out;
}

struct Synthesizer::State {
    LoadOptions opts;
    std::string dir;
    model::LoadedModel lm;
    std::optional<text::Tokenizer> tok;
    std::optional<codec::Codec> codec;
    std::string active;  // applied adapter dir
    bool merged = false;
    bool narrow = false;    // bf16 weights, fp32 compute
    bool switched = false;  // another adapter was used: keep branches unmerged from then on
    std::optional<AdapterVoice> model_voice;  // a merged folder's voice (written by `adapter merge`)
    std::map<std::string, model::Adapter> adapters;
    std::map<std::string, AdapterVoice> voices;
    std::map<std::string, torch::Tensor> speakers;  // key → [H] on device, model dtype
    std::map<std::string, torch::Tensor> ref_codes; // wav path → [T, 16] CPU

    model::Talker& talker() { return lm.model->talker; }

    torch::Tensor to_model(const torch::Tensor& v) {
        auto out = v.to(opts.device, opts.dtype).reshape({-1});
        int64_t H = lm.config.talker.hidden_size;
        if (out.size(0) != H)
            throw InputError(fmt::format("speaker vector has {} values; this talker needs {} (another model size?)",
                                         out.size(0), H));
        return out;
    }

    torch::Tensor speaker_from_audio(const std::string& wav_path) {
        auto key = "wav:" + fs::weakly_canonical(wav_path).string();
        if (auto it = speakers.find(key); it != speakers.end()) return it->second;
        if (!lm.model->has_speaker_encoder())
            throw InputError("this checkpoint has no speaker encoder (only Base checkpoints clone from audio)");
        auto audio = io::read_audio_resampled(wav_path, codec::kSampleRate);
        torch::NoGradGuard ng;
        auto v = to_model(model::speaker_embedding(lm.model->speaker_encoder, audio.samples));
        speakers[key] = v;
        return v;
    }

    torch::Tensor speaker_from_file(const std::string& path) {
        auto key = "file:" + path;
        if (auto it = speakers.find(key); it != speakers.end()) return it->second;
        auto v = to_model(read_speaker_embedding(path));
        speakers[key] = v;
        return v;
    }

    torch::Tensor codes_of(const std::string& wav_path) {
        auto key = fs::weakly_canonical(wav_path).string();
        if (auto it = ref_codes.find(key); it != ref_codes.end()) return it->second;
        auto audio = io::read_audio_resampled(wav_path, codec::kSampleRate);
        torch::NoGradGuard ng;
        auto c = codec->encode(audio.samples);
        ref_codes[key] = c;
        return c;
    }

    const AdapterVoice& voice_of(const std::string& adapter_dir) {
        auto it = voices.find(adapter_dir);
        if (it == voices.end()) it = voices.emplace(adapter_dir, inspect_adapter_voice(adapter_dir)).first;
        return it->second;
    }

    void use_adapter(const std::string& requested) {
        // One spelling per folder, so "a/" and "./a" are the same adapter.
        const std::string dir_ = requested.empty() ? std::string() : fs::weakly_canonical(requested).string();
        if (dir_ == active) return;
        auto& t = talker();
        torch::NoGradGuard ng;
        if (!active.empty()) {
            // Unmerging restores the base weights up to the dtype's rounding; from here on branches stay separate.
            if (merged) model::unmerge_lora(t);
            model::detach_lora(t);
            active.clear();
            merged = false;
            switched = true;
        }
        if (dir_.empty()) return;
        auto it = adapters.find(dir_);
        if (it == adapters.end()) it = adapters.emplace(dir_, model::read_adapter(dir_)).first;
        model::apply_adapter(t, it->second);
        model::set_lora_scale(t, opts.lora_scale);
        active = dir_;
        if (opts.merge_adapter && !switched) {
            model::merge_lora(t);
            merged = true;
        }
    }
};

namespace {
// "bf16 weights, fp32 compute" applies on the CPU when the checkpoint's linear weights are bf16 (so nothing is lost).
bool use_narrow_weights(const LoadOptions& o, const std::string& dir) {
    if (!o.narrow_weights || !o.device.is_cpu() || o.dtype != torch::kFloat32) return false;
    auto path = fs::path(dir) / "model.safetensors";
    if (!fs::exists(path)) return false;  // load_model says what is missing
    io::SafetensorsFile f(path.string());
    const char* probe = "talker.model.layers.0.mlp.up_proj.weight";
    return f.contains(probe) && f.info(probe).dtype == io::DType::BF16;
}
}  // namespace

Synthesizer::Synthesizer(const LoadOptions& opts) : s_(std::make_unique<State>()) {
    s_->opts = opts;
    if (!(opts.lora_scale >= 0) || !std::isfinite(opts.lora_scale))
        throw InputError(fmt::format("--lora-scale must be a finite number >= 0, got {}", opts.lora_scale));
    s_->dir = io::locate_model(opts.model);
    if (use_narrow_weights(opts, s_->dir)) {
        // Loaded as stored (bf16, one copy), then everything but the big weights moves to fp32.
        s_->lm = model::load_model(s_->dir, opts.device, torch::kBFloat16);
        model::keep_weights_narrow(*s_->lm.model, torch::kFloat32);
        s_->narrow = true;
    } else {
        s_->lm = model::load_model(s_->dir, opts.device, opts.dtype);
    }
    // Synthesis never trains: on the CPU the linear weights take the kernels' layout, or with int8 become an int8
    // copy in that layout and the bf16 weights are freed (held once); adapters then run unmerged, as a branch.
    if (opts.int8_weights) {
        if (!opts.device.is_cpu()) throw InputError("int8 weights are a CPU option (on CUDA use --dtype bf16)");
        model::use_int8_weights(*s_->lm.model, /*release_source=*/true);
        s_->opts.merge_adapter = false;
    } else if (opts.device.is_cpu()) {
        model::use_inference_layout(*s_->lm.model);
    }
    s_->tok = text::Tokenizer::from_folder(s_->dir);
    s_->codec = codec::Codec::load(s_->dir, opts.device, opts.codec_dtype);
    if (fs::exists(fs::path(s_->dir) / kMergedFromFile)) s_->model_voice = inspect_adapter_voice(s_->dir);
    if (!opts.adapter.empty()) s_->use_adapter(opts.adapter);
}

Synthesizer::~Synthesizer() = default;
Synthesizer::Synthesizer(Synthesizer&&) noexcept = default;

const model::ModelConfig& Synthesizer::config() const { return s_->lm.config; }
const LoadOptions& Synthesizer::load_options() const { return s_->opts; }
bool Synthesizer::weights_narrow() const { return s_->narrow; }
const model::GenerationConfig& Synthesizer::generation() const { return s_->lm.generation; }
model::TTSModel& Synthesizer::model() { return s_->lm.model; }
const codec::Codec& Synthesizer::codec() const { return *s_->codec; }
const text::Tokenizer& Synthesizer::tokenizer() const { return *s_->tok; }
const std::string& Synthesizer::model_dir() const { return s_->dir; }
const std::string& Synthesizer::active_adapter() const { return s_->active; }
bool Synthesizer::adapter_merged() const { return s_->merged; }
void Synthesizer::use_adapter(const std::string& dir) { s_->use_adapter(dir); }

bool Synthesizer::uses_icl(const Utterance& u) {
    auto& S = *s_;
    if (S.lm.config.tts_model_type != "base") return false;
    if (!u.ref_audio.empty()) return !u.ref_text.empty();
    if (u.icl) return true;
    if (u.no_icl) return false;
    const std::string dir = u.adapter == "-" ? std::string() : (u.adapter.empty() ? S.opts.adapter : u.adapter);
    const AdapterVoice* av =
        !dir.empty() ? &S.voice_of(dir) : (S.model_voice && u.adapter != "-" ? &*S.model_voice : nullptr);
    return av && av->prompt == "icl";
}

Synthesizer::Prepared Synthesizer::prepare(const Utterance& u) {
    auto& S = *s_;
    const auto& cfg = S.lm.config;
    const std::string type = cfg.tts_model_type;

    S.use_adapter(u.adapter == "-" ? std::string() : (u.adapter.empty() ? S.opts.adapter : u.adapter));
    // The voice an adapter was trained with; a merged folder carries its adapter's voice files.
    const AdapterVoice* av = !S.active.empty() ? &S.voice_of(S.active)
                                               : (S.model_voice && u.adapter != "-" ? &*S.model_voice : nullptr);

    Prepared p;
    auto& req = p.request;
    auto target = text::encode_target_text(*S.tok, u.text);
    req.role.assign(target.role.begin(), target.role.end());
    req.content.assign(target.content.begin(), target.content.end());
    req.language = io::ascii_lower(!u.language.empty() ? u.language : (av && !av->language.empty() ? av->language : "auto"));

    if (!u.instruct.empty()) {
        if (type == "custom_voice" && cfg.tts_model_size == "0b6")
            throw InputError("0.6B CustomVoice does not follow instructions (the reference drops them): "
                             "remove --instruct or use the 1.7B CustomVoice checkpoint");
        auto ids = text::encode_instruct(*S.tok, u.instruct);
        req.instruct.assign(ids.begin(), ids.end());
    }
    if (!u.ref_text.empty() && u.ref_audio.empty())
        throw InputError("--ref-text needs --ref-audio (the recording it transcribes)");

    torch::Tensor spk;
    std::string icl_wav, icl_text;
    if (type == "base") {
        if (!u.speaker.empty())
            throw InputError(fmt::format("speaker '{}': named speakers need a CustomVoice checkpoint; a Base "
                                         "checkpoint clones a voice from --ref-audio or an --adapter",
                                         u.speaker));
        req.voice = VoiceKind::SpeakerVector;
        if (!u.ref_audio.empty()) {
            spk = S.speaker_from_audio(u.ref_audio);
            if (!u.ref_text.empty()) icl_wav = u.ref_audio, icl_text = u.ref_text;
        } else if (av) {
            if (!av->speaker_file.empty()) spk = S.speaker_from_file(av->speaker_file);
            else if (!av->ref_sample.empty()) spk = S.speaker_from_audio(av->ref_sample);
            else
                throw InputError(fmt::format("adapter '{}' has no stored speaker embedding and no {}: give "
                                             "--ref-audio",
                                             av->dir, kRefSampleFile));
            if (u.icl || (!u.no_icl && av->prompt == "icl")) {  // an ICL adapter speaks as it was trained
                if (av->ref_sample.empty() || av->ref_sample_text.empty())
                    throw InputError(fmt::format("--icl needs {} and ref_sample_text in {} of adapter '{}'",
                                                 kRefSampleFile, kTrainingMetaFile, av->dir));
                icl_wav = av->ref_sample, icl_text = av->ref_sample_text;
            }
        } else {
            throw InputError("a Base checkpoint clones a voice: give --ref-audio (with --ref-text for ICL) or "
                             "--adapter");
        }
        p.mode = icl_wav.empty() ? "clone x-vector" : "clone ICL";
    } else if (type == "custom_voice") {
        if (!u.ref_audio.empty()) throw InputError("CustomVoice checkpoints do not clone from --ref-audio");
        if (u.speaker.empty()) {
            auto sp = cfg.supported_speakers();
            std::string list;
            for (auto& s : sp) list += (list.empty() ? "" : ", ") + s;
            throw InputError(fmt::format("a CustomVoice checkpoint needs --speaker (one of: {})", list));
        }
        req.voice = VoiceKind::NamedSpeaker;
        req.speaker = u.speaker;
        p.mode = "custom voice";
    } else if (type == "voice_design") {
        if (!u.ref_audio.empty() || !u.speaker.empty())
            throw InputError("a VoiceDesign checkpoint takes its voice from --instruct (a description), not "
                             "--ref-audio or --speaker");
        req.voice = VoiceKind::None;
        p.mode = "voice design";
    } else {
        throw InputError(fmt::format("{}: unknown tts_model_type '{}'", cfg.source, type));
    }

    if (!icl_wav.empty()) {
        auto ref_ids = text::encode_reference_text(*S.tok, icl_text);
        req.ref_content.assign(ref_ids.begin(), ref_ids.end());
        if (u.ref_codes.defined() && icl_wav == u.ref_audio) {
            codec::validate_codes(u.ref_codes, false, "reference codes");
            p.ref_codes = u.ref_codes.to(torch::kCPU, torch::kLong).contiguous();
        } else {
            p.ref_codes = S.codes_of(icl_wav);
        }
        req.ref_frames = p.ref_codes.size(0);
        if (req.ref_frames == 0) throw InputError(fmt::format("{}: the reference has no audio frames", icl_wav));
    }
    req.layout = u.layout ? *u.layout : TextLayout::NonStreaming;

    auto recipe = build_prompt(req, cfg);
    auto& talker = S.talker();
    PromptEmbedders emb;
    auto dev = S.opts.device;
    emb.text = [&](const torch::Tensor& ids) { return talker->text_embed(ids.to(dev)); };
    emb.codec = [&](const torch::Tensor& ids) { return talker->codec_embed(ids.to(dev)); };
    emb.frame = [&](const torch::Tensor& codes) { return talker->frame_embed(codes.to(dev)); };
    {
        torch::NoGradGuard ng;
        p.tensors = embed_prompt(recipe, emb, cfg.tts_pad_token_id, spk, p.ref_codes);
    }
    int64_t max_frames = u.max_frames > 0 ? u.max_frames : S.lm.generation.max_new_tokens;
    p.frame_cap = frame_cap(static_cast<int64_t>(req.content.size()), max_frames, u.cap_rule);
    return p;
}

namespace {

// The parts of a result known before generation.
SynthResult start_result(const Synthesizer::Prepared& p) {
    SynthResult r;
    r.frame_cap = p.frame_cap;
    r.mode = p.mode;
    r.language = p.request.language;
    r.layout = p.request.layout;
    r.text_tokens = static_cast<int64_t>(p.request.content.size());
    return r;
}

GenerateOptions generate_options(const Synthesizer& s, const Utterance& u, const Synthesizer::Prepared& p) {
    GenerateOptions g;
    g.talker = talker_params(s.generation(), u.greedy);
    g.subtalker = subtalker_params(s.generation(), u.greedy);
    g.max_frames = p.frame_cap;
    g.seed = u.seed;
    g.cuda_graphs = s.load_options().cuda_graphs;
    return g;
}

// Generated codes → audio (the ICL reference decoded in front and its share cut off, as the reference wrapper).
void finish_result(SynthResult& r, const codec::Codec& codec, const torch::Tensor& ref_codes, GenerateResult&& gen) {
    auto t1 = Clock::now();
    torch::NoGradGuard ng;
    r.frames = gen.codes.size(0);
    r.hit_cap = gen.hit_cap;
    if (ref_codes.defined()) {
        auto all = torch::cat({ref_codes.to(torch::kLong), gen.codes});
        r.audio = trim_reference(decode_in_blocks(codec, all), ref_codes.size(0), all.size(0));
    } else if (r.frames > 0) {
        r.audio = decode_in_blocks(codec, gen.codes);
    }
    r.decode_seconds = since(t1);
}

}  // namespace

SynthResult Synthesizer::speak(const Utterance& u, const FrameCallback& on_frame) {
    auto t0 = Clock::now();
    auto p = prepare(u);
    auto gen = generate_codes(s_->talker(), p.tensors, generate_options(*this, u, p), on_frame);
    SynthResult r = start_result(p);
    r.generate_seconds = since(t0);
    finish_result(r, *s_->codec, p.ref_codes, std::move(gen));
    return r;
}

int64_t Synthesizer::batch_size(int64_t requested) const {
    if (requested < 0) throw InputError(fmt::format("the batch size must be at least 1, got {}", requested));
    return requested > 0 ? requested : default_batch(s_->opts.device);
}

void Synthesizer::speak_batch(const std::vector<Utterance>& us, int64_t requested, const BatchLineCallback& on_line) {
    const int64_t batch = batch_size(requested);
    auto adapter_of = [&](const Utterance& u) {
        std::string a = u.adapter == "-" ? std::string() : (u.adapter.empty() ? s_->opts.adapter : u.adapter);
        return a.empty() ? a : fs::weakly_canonical(a).string();
    };
    struct Pending {
        Prepared prepared;
        Clock::time_point start;
    };
    size_t i = 0;
    while (i < us.size()) {
        // One run of lines that share the weights (adapter) and the sampling settings.
        const std::string adapter = adapter_of(us[i]);
        const bool greedy = us[i].greedy;
        std::map<int64_t, Pending> pending;
        JobSource source = [&](GenerateJob& job) {
            while (i < us.size() && adapter_of(us[i]) == adapter && us[i].greedy == greedy) {
                const size_t idx = i++;
                try {
                    Pending pd{prepare(us[idx]), Clock::now()};
                    job.id = static_cast<int64_t>(idx);
                    job.prompt = pd.prepared.tensors;
                    job.opts = generate_options(*this, us[idx], pd.prepared);
                    pending.emplace(job.id, std::move(pd));
                    return true;
                } catch (const InputError& e) {
                    on_line(idx, BatchLineResult{{}, error_text(e), true});
                } catch (const std::exception& e) {
                    on_line(idx, BatchLineResult{{}, error_text(e)});
                }
            }
            return false;
        };
        JobDone done = [&](int64_t id, GenerateResult&& gen) {
            auto it = pending.find(id);
            BatchLineResult line;
            try {
                line.result = start_result(it->second.prepared);
                line.result.generate_seconds = since(it->second.start);
                finish_result(line.result, *s_->codec, it->second.prepared.ref_codes, std::move(gen));
            } catch (const std::exception& e) {
                line.error = error_text(e);
            }
            pending.erase(it);
            on_line(static_cast<size_t>(id), std::move(line));
        };
        try {
            generate_batch(s_->talker(), batch, source, done);
        } catch (const std::exception& e) {
            // The run's lines still generating share its failure; the next run starts after them.
            for (auto& [id, pd] : pending) on_line(static_cast<size_t>(id), BatchLineResult{{}, error_text(e)});
        }
    }
}

}  // namespace alexandria::synth
