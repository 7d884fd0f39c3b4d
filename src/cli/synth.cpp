// `alexandria synth`: speech from one text or a whole JSONL script.
#include <cstdio>
#include <filesystem>

#include <fmt/ranges.h>

#include "alexandria/io/audio.h"
#include "alexandria/io/device.h"
#include "alexandria/io/files.h"
#include "alexandria/io/progress.h"
#include "alexandria/synth/book.h"
#include "alexandria/synth/synthesizer.h"
#include "cli.h"

namespace alexandria::cli {
namespace synth_command {  // named, not anonymous: the command files compile together in unity builds

namespace fs = std::filesystem;
using namespace alexandria::synth;

struct Options {
    std::string model, adapter, device = "auto", dtype = "auto", codec_dtype = "f32";
    double lora_scale = 1.0;
    bool no_merge = false, no_cuda_graphs = false;
    std::string text, text_file, script, out, out_dir, merge, shard;
    std::string ref_audio, ref_text, ref_text_file, speaker, instruct, language, layout = "auto";
    std::vector<std::string> voices;
    bool icl = false, greedy = false, force = false, json = false;
    std::string prompt = "auto";
    uint64_t seed = 0;
    int64_t max_frames = 0, min_frames = 64;
    double frames_per_token = FrameCapRule{}.frames_per_token;
    int max_chars = 500;
    int64_t batch = 0;  // 0 = per device (set in run())
    std::string format = "pcm16";
};

std::string status_name(LineReport::Status s) {
    switch (s) {
        case LineReport::Status::Rendered: return "rendered";
        case LineReport::Status::Skipped: return "skipped";
        case LineReport::Status::Failed: return "failed";
    }
    return "?";
}

Utterance base_utterance(const Options& o) {
    Utterance u;
    u.language = o.language;  // "" = the adapter's training language, else auto
    u.speaker = o.speaker;
    u.instruct = o.instruct;
    u.ref_audio = o.ref_audio;
    u.ref_text = o.ref_text;
    if (!o.ref_text_file.empty()) {
        if (!o.ref_text.empty()) throw InputError("give --ref-text or --ref-text-file, not both");
        u.ref_text = io::read_file(o.ref_text_file);
        while (!u.ref_text.empty() && (u.ref_text.back() == '\n' || u.ref_text.back() == '\r')) u.ref_text.pop_back();
    }
    if (o.prompt != "auto" && o.prompt != "xvector" && o.prompt != "icl")
        throw InputError(fmt::format("--prompt: '{}' is not a prompt mode (auto, xvector, icl)", o.prompt));
    if (o.icl && o.prompt == "xvector") throw InputError("--icl and --prompt xvector contradict each other");
    u.icl = o.icl || o.prompt == "icl";
    u.no_icl = o.prompt == "xvector";
    if (o.layout != "auto") u.layout = parse_text_layout(o.layout);
    u.seed = o.seed;
    u.greedy = o.greedy;
    u.max_frames = o.max_frames;
    u.cap_rule.frames_per_token = o.frames_per_token;
    u.cap_rule.min_frames = o.min_frames;
    if (!(o.frames_per_token > 0)) throw InputError("--frames-per-token must be > 0");
    if (o.min_frames < 1) throw InputError("--min-frames must be >= 1");
    if (o.max_frames < 0) throw InputError("--max-frames must be >= 0");
    return u;
}

std::map<std::string, std::string> parse_voices(const std::vector<std::string>& specs) {
    std::map<std::string, std::string> out;
    for (const auto& s : specs) {
        auto eq = s.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
            throw InputError(fmt::format("--voice '{}': expected NAME=PATH (an adapter folder or an audio clip)", s));
        out[s.substr(0, eq)] = s.substr(eq + 1);
    }
    return out;
}

int run_single(const Options& o, const LoadOptions& lo) {
    if (o.out.empty()) throw InputError("--out is required (a file, or - for raw PCM16 on stdout)");
    if (!o.out_dir.empty() || !o.merge.empty() || !o.shard.empty())
        throw InputError("--out-dir, --merge and --shard belong to --script");
    if (o.batch != 0) throw InputError("--batch belongs to --script (a single text is one line)");
    std::string text = o.text;
    if (!o.text_file.empty()) {
        if (!text.empty()) throw InputError("give --text or --text-file, not both");
        text = io::read_file(o.text_file);
    }
    const bool to_stdout = o.out == "-";
    if (to_stdout && o.json) throw InputError("--json and --out - both want stdout");
    auto fmt_ = io::parse_audio_format(o.format);
    Utterance u = base_utterance(o);
    u.text = text;

    Synthesizer synth(lo);
    int chunks = 0;
    bool capped = false;
    // On stdout, audio streams out while generating, a block of frames at a time (the same blocks speak() decodes,
    // so the bytes are those of the finished line). ICL cannot stream: the reference's share is cut from the
    // whole waveform at the end.
    const bool stream = to_stdout && !synth.uses_icl(u);  // uses_icl: also an ICL-trained adapter
    std::optional<AudioStream> audio;
    auto write = [](const std::vector<float>& pcm) {
        if (pcm.empty()) return;
        io::write_pcm16_raw(stdout, pcm);
        std::fflush(stdout);
    };
    auto on_chunk = [&](int) {
        if (audio) write(audio->finish());
        audio.emplace(synth.codec());
    };
    FrameCallback on_frame;
    if (stream) on_frame = [&](int64_t, const torch::Tensor& frame) { write(audio->push(frame)); };
    auto r = stream ? speak_long(synth, u, o.max_chars, &chunks, &capped, on_chunk, on_frame)
                    : speak_long(synth, u, o.max_chars, &chunks, &capped);
    if (to_stdout) {
        if (stream && audio) write(audio->finish());
        if (!stream) io::write_pcm16_raw(stdout, r.audio);
        std::fflush(stdout);
    } else {
        io::Audio a;
        a.samples = r.audio;
        a.sample_rate = codec::kSampleRate;
        io::write_audio(o.out, a, fmt_);
    }
    say("{}: {:.2f} s of audio, {} frames, {} ({}, {}, {}), RTF {:.3f}{}", to_stdout ? "stdout" : o.out,
        r.audio_seconds(), r.frames, r.mode, r.language, to_string(r.layout),
        synth.active_adapter().empty() ? "no adapter"
                                       : (synth.adapter_merged() ? "adapter merged" : "adapter unmerged"),
        r.rtf(), chunks > 1 ? fmt::format(", {} chunks", chunks) : "");
    if (capped)
        say("warning: hit the frame cap ({} frames) without an end-of-speech token: the audio is probably a "
            "runaway; try another --seed, or raise --max-frames/--frames-per-token if the text is really that long",
            r.frame_cap);
    if (o.json) {
        print_json({{"out", o.out},
                    {"seconds", r.audio_seconds()},
                    {"frames", r.frames},
                    {"frame_cap", r.frame_cap},
                    {"hit_cap", capped},
                    {"chunks", chunks},
                    {"mode", r.mode},
                    {"language", r.language},
                    {"text_layout", to_string(r.layout)},
                    {"adapter", synth.active_adapter()},
                    {"adapter_merged", synth.adapter_merged()},
                    {"seed", o.seed},
                    {"compute_seconds", r.compute_seconds()},
                    {"rtf", r.rtf()}});
    }
    return 0;
}

int run_script(const Options& o, LoadOptions lo) {
    if (!o.out.empty() || !o.text.empty() || !o.text_file.empty())
        throw InputError("--script writes into --out-dir; --out/--text are for a single text");
    if (o.out_dir.empty()) throw InputError("--script needs --out-dir");
    ScriptOptions so;
    so.script = o.script;
    so.out_dir = o.out_dir;
    so.merge_path = o.merge;
    if (!o.shard.empty()) so.shard = parse_shard(o.shard);
    so.format = io::parse_audio_format(o.format);
    so.max_chars = o.max_chars;
    so.force = o.force;
    if (o.batch < 0) throw InputError("--batch must be at least 1");
    so.batch = o.batch;  // 0: the device's default (Synthesizer::batch_size)
    so.defaults = base_utterance(o);
    so.voices = parse_voices(o.voices);
    // Every line is checked before the model loads: one bad line stops the run with nothing rendered.
    auto script = read_script(o.script);
    const std::string script_dir = std::filesystem::path(o.script).parent_path().string();
    ScriptCheck check;
    check.voice = [&](const std::string& v) { resolve_voice(v, so.voices, script_dir); };
    validate_script(script, check);
    // Lines that switch between adapters keep the branches unmerged (no reload, no rounding drift).
    if (script_switches_adapters(script, so, lo.adapter)) lo.merge_adapter = false;

    Synthesizer synth(lo);
    if (synth.config().tts_model_type == "custom_voice") {  // speakers are known once the model is
        check.speakers = synth.config().supported_speakers();
        validate_script(script, check);
    }
    nlohmann::json lines = nlohmann::json::array();
    auto rep = render_script(synth, so, [&](const LineReport& l, const ScriptProgress& p) {
        std::string eta = p.eta >= 0 ? io::format_duration(p.eta) : "?";
        if (l.status == LineReport::Status::Failed)
            say("[{}/{}] line {}: FAILED: {}", p.done, p.total, l.line, l.error);
        else if (l.status == LineReport::Status::Skipped)
            say("[{}/{}] line {}: exists, skipped ({})", p.done, p.total, l.line, l.out);
        else
            say("[{}/{}] line {} -> {}: {:.2f} s, RTF {:.3f}{}{}, ETA {}", p.done, p.total, l.line, l.out,
                l.audio_seconds, l.rtf(), l.chunks > 1 ? fmt::format(", {} chunks", l.chunks) : "",
                l.hit_cap ? ", HIT THE FRAME CAP" : "", eta);
        lines.push_back({{"line", l.line},
                         {"status", status_name(l.status)},
                         {"out", l.out},
                         {"error", l.error},
                         {"seconds", l.audio_seconds},
                         {"frames", l.frames},
                         {"chunks", l.chunks},
                         {"hit_cap", l.hit_cap},
                         {"rtf", l.rtf()}});
    });
    std::vector<int> capped, failed;
    for (auto& l : rep.lines) {
        if (l.hit_cap) capped.push_back(l.line);
        if (l.status == LineReport::Status::Failed) failed.push_back(l.line);
    }
    say("{} rendered, {} skipped (already done), {} failed{}", rep.rendered, rep.skipped, rep.failed,
        rep.other_shards ? fmt::format(", {} left to other shards", rep.other_shards) : "");
    if (!capped.empty())
        say("warning: {} line(s) hit the frame cap without an end-of-speech token (probably runaways; delete their "
            "files and rerun with another seed): lines {}",
            capped.size(), fmt::join(capped, ", "));
    if (rep.merged) say("book: {} ({})", o.merge, io::format_duration(rep.book_seconds));
    else if (!rep.merge_note.empty()) say("{}", rep.merge_note);
    if (o.json)
        print_json({{"rendered", rep.rendered},
                    {"skipped", rep.skipped},
                    {"failed", rep.failed},
                    {"failed_lines", failed},
                    {"capped_lines", capped},
                    {"other_shards", rep.other_shards},
                    {"merged", rep.merged},
                    {"merge_note", rep.merge_note},
                    {"book_seconds", rep.book_seconds},
                    {"lines", lines}});
    return rep.ok() ? 0 : 1;
}

int run(const Options& o) {
    LoadOptions lo;
    lo.model = o.model;
    const io::DeviceChoice dev = io::resolve_device(o.device);
    lo.device = dev.device;
    const bool int8 = o.dtype == "int8";
    if (int8 && !dev.device.is_cpu()) throw InputError("--dtype int8 is for the CPU (on CUDA use bf16)");
    lo.dtype = io::resolve_dtype(int8 ? "f32" : o.dtype, dev);
    lo.int8_weights = int8;
    lo.adapter = o.adapter;
    lo.lora_scale = o.lora_scale;
    lo.merge_adapter = !o.no_merge;
    lo.cuda_graphs = !o.no_cuda_graphs;
    lo.narrow_weights = o.dtype == "auto" || int8;
    if (o.codec_dtype == "model") lo.codec_dtype = lo.dtype;
    else if (o.codec_dtype != "f32") throw InputError(fmt::format("--codec-dtype '{}': expected f32 or model", o.codec_dtype));
    if (!o.adapter.empty() && !fs::is_directory(o.adapter))
        throw InputError(fmt::format("--adapter '{}': no such folder", o.adapter));
    if (!o.script.empty()) return run_script(o, lo);
    if (o.text.empty() && o.text_file.empty()) throw InputError("give --text, --text-file or --script");
    return run_single(o, lo);
}

const bool registered = add_command({"synth", "", "Speak text (or a JSONL script) in a voice", [](CLI::App& app) -> Action {
    auto o = std::make_shared<Options>();
    app.add_option("--model", o->model, "Model folder or Hugging Face id in the local cache")->required();
    app.add_option("--adapter", o->adapter, "LoRA adapter folder (ours, Alexandria's or PEFT's)");
    app.add_option("--lora-scale", o->lora_scale, "Strength of the adapter (0 = base model)")->capture_default_str();
    app.add_flag("--no-merge", o->no_merge, "Keep the adapter unmerged (otherwise folded into the weights at load)");
    app.add_option("--text", o->text, "Text to speak");
    app.add_option("--text-file", o->text_file, "File holding the text to speak");
    app.add_option("--out", o->out, "Output audio file, or - for raw 24 kHz PCM16 on stdout");
    app.add_option("--script", o->script, "JSONL script: one {\"text\": ...} per line");
    app.add_option("--out-dir", o->out_dir, "Folder for the script's per-line files");
    app.add_option("--merge", o->merge, "Also write the whole script as one file (with pauses)");
    app.add_option("--shard", o->shard, "Render only part K of N of the script (1-based, e.g. 2/8)");
    app.add_option("--batch", o->batch,
                   "Script lines rendered at once, each with its own seed and stop (default: 8 on CPU, 32 on CUDA)");
    app.add_flag("--force", o->force, "Re-render script lines whose output already exists");
    app.add_option("--voice", o->voices, "NAME=PATH: a voice a script line names (adapter folder or audio clip)");
    app.add_option("--ref-audio", o->ref_audio, "Reference clip to clone (Base checkpoints)");
    app.add_option("--ref-text", o->ref_text, "Transcript of --ref-audio: enables ICL cloning");
    app.add_option("--ref-text-file", o->ref_text_file, "File holding the transcript of --ref-audio");
    app.add_flag("--icl", o->icl, "ICL with the adapter's ref_sample.wav and its transcript (= --prompt icl)");
    app.add_option("--prompt", o->prompt,
                   "auto | xvector | icl: how an adapter's voice is prompted (auto: as the adapter was trained, "
                   "training_meta.json 'prompt'; icl uses its ref_sample.wav and transcript)")
        ->capture_default_str();
    app.add_option("--speaker", o->speaker, "CustomVoice speaker name");
    app.add_option("--instruct", o->instruct, "Style instruction (VoiceDesign: the voice description)");
    app.add_option("--language", o->language,
                   "auto or a language the model lists (english, chinese, ...); default: the adapter's training "
                   "language, else auto");
    app.add_option("--text-layout", o->layout,
                   "auto | streaming | non-streaming (auto: non-streaming in every mode. Streaming, the official "
                   "voice-clone default, feeds the text at 12.5 tokens/s while speech uses about 4-5, which speeds "
                   "the speaking rate up over long lines (QwenLM/Qwen3-TTS issue 239))")
        ->capture_default_str();
    app.add_option("--seed", o->seed, "Sampling seed, applied afresh to every line")->capture_default_str();
    app.add_flag("--greedy", o->greedy, "No sampling (argmax everywhere)");
    app.add_option("--max-frames", o->max_frames, "Frame cap (0 = generation_config.json max_new_tokens)")
        ->capture_default_str();
    app.add_option("--frames-per-token", o->frames_per_token, "Runaway guard: frames allowed per text token")
        ->capture_default_str();
    app.add_option("--min-frames", o->min_frames, "Runaway guard: the cap is never below this")->capture_default_str();
    app.add_option("--max-chars", o->max_chars, "Split longer texts at sentence ends (0 = never)")
        ->capture_default_str();
    app.add_option("--format", o->format, "pcm16 | float32 | flac")->capture_default_str();
    app.add_option("--device", o->device, "auto (CUDA when there is one), cpu, cuda or cuda:N")->capture_default_str();
    app.add_flag("--no-cuda-graphs", o->no_cuda_graphs, "CUDA: run the decode step eagerly, not as captured graphs");
    app.add_option("--dtype", o->dtype, "auto | f32 | bf16 | f16 | int8 (auto: on CPU fp32 compute with the weights kept in bf16 "
                   "when the checkpoint stores them so (lossless), bf16 on CUDA; int8: CPU, linear weights quantized "
                   "per output row and held only so, fp32 compute, adapters unmerged, ~1.5x faster decoding than auto)")
        ->capture_default_str();
    app.add_option("--codec-dtype", o->codec_dtype,
                   "f32 | model: the codec in fp32 (default) or in --dtype as the official pipelines run it (bf16 "
                   "on GPU: decoding ~44 dB SNR from fp32; ICL reference codes mostly differ)")
        ->capture_default_str();
    app.add_flag("--json", o->json, "Machine-readable summary on stdout");
    return [o] { return run(*o); };
}});

}  // namespace synth_command
}  // namespace alexandria::cli
