#include "alexandria/codec/config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace alexandria::codec {

using nlohmann::json;

namespace {

struct Reader {
    const json& obj;
    std::string where;   // file
    std::string prefix;  // "encoder_config." etc.

    const json& get(const char* key) const {
        auto it = obj.find(key);
        if (it == obj.end() || it->is_null())
            throw InputError(fmt::format("{}: {}{}: missing", where, prefix, key));
        return *it;
    }
    [[noreturn]] void bad(const char* key, const std::string& what) const {
        throw InputError(fmt::format("{}: {}{}: {}", where, prefix, key, what));
    }
    int64_t integer(const char* key, int64_t min = 1) const {
        const json& v = get(key);
        int64_t x;
        if (v.is_number_integer()) {
            x = v.get<int64_t>();
        } else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
                   std::fabs(v.get<double>()) < 1e15) {
            x = int64_t(v.get<double>());
        } else {
            bad(key, "expected an integer");
        }
        if (x < min) bad(key, fmt::format("must be at least {} (got {})", min, x));
        return x;
    }
    double number(const char* key, bool positive = true) const {
        const json& v = get(key);
        if (!v.is_number()) bad(key, "expected a number");
        double x = v.get<double>();
        if (!std::isfinite(x) || (positive && !(x > 0))) bad(key, fmt::format("must be a positive number (got {})", x));
        return x;
    }
    std::vector<int64_t> int_list(const char* key) const {
        const json& v = get(key);
        if (!v.is_array() || v.empty()) bad(key, "expected a non-empty list of integers");
        std::vector<int64_t> out;
        for (const auto& e : v) {
            if (!e.is_number_integer() || e.get<int64_t>() < 1) bad(key, "expected a list of positive integers");
            out.push_back(e.get<int64_t>());
        }
        return out;
    }
    std::string string(const char* key) const {
        const json& v = get(key);
        if (!v.is_string()) bad(key, "expected a string");
        return v.get<std::string>();
    }
    bool boolean(const char* key) const {
        const json& v = get(key);
        if (!v.is_boolean()) bad(key, "expected true or false");
        return v.get<bool>();
    }
    // Keys the network has no implementation for any other value of.
    void expect_string(const char* key, const std::string& want) const {
        if (obj.contains(key) && !obj[key].is_null() && string(key) != want)
            bad(key, fmt::format("only \"{}\" is supported (got \"{}\")", want, obj[key].get<std::string>()));
    }
    void expect_bool(const char* key, bool want) const {
        if (obj.contains(key) && !obj[key].is_null() && boolean(key) != want)
            bad(key, fmt::format("only {} is supported", want ? "true" : "false"));
    }
};

int64_t product(const std::vector<int64_t>& v) {
    int64_t p = 1;
    for (auto x : v) p *= x;
    return p;
}

}  // namespace

int64_t EncoderConfig::seanet_hop() const { return product(upsampling_ratios); }

int64_t EncoderConfig::downsample_kernel() const {
    // Mimi: encodec_frame_rate = ceil(sampling_rate / hop); kernel = 2 * int(encodec_frame_rate / frame_rate).
    double encodec_frame_rate = std::ceil(double(sampling_rate) / double(seanet_hop()));
    return 2 * int64_t(encodec_frame_rate / frame_rate);
}

int64_t DecoderConfig::total_upsample() const { return product(upsample_rates) * product(upsampling_ratios); }

namespace {

// encoder_config: the Mimi encoder (SEANet, transformer, quantizers).
EncoderConfig read_encoder(const Reader& e) {
    const json& ej = e.obj;
    EncoderConfig E;
    E.audio_channels = e.integer("audio_channels");
    E.num_filters = e.integer("num_filters");
    E.upsampling_ratios = e.int_list("upsampling_ratios");
    E.kernel_size = e.integer("kernel_size");
    E.last_kernel_size = e.integer("last_kernel_size");
    E.residual_kernel_size = e.integer("residual_kernel_size");
    E.dilation_growth_rate = e.integer("dilation_growth_rate");
    E.num_residual_layers = e.integer("num_residual_layers", 0);
    E.compress = e.integer("compress");
    E.hidden_size = e.integer("hidden_size");
    E.num_hidden_layers = e.integer("num_hidden_layers", 0);
    E.num_attention_heads = e.integer("num_attention_heads");
    E.num_key_value_heads = e.integer("num_key_value_heads");
    E.head_dim = ej.contains("head_dim") && !ej["head_dim"].is_null() ? e.integer("head_dim")
                                                                      : E.hidden_size / E.num_attention_heads;
    E.intermediate_size = e.integer("intermediate_size");
    E.norm_eps = e.number("norm_eps");
    E.rope_theta = e.number("rope_theta");
    E.sliding_window = ej.contains("sliding_window") && !ej["sliding_window"].is_null() ? e.integer("sliding_window") : 0;
    E.codebook_size = e.integer("codebook_size");
    E.codebook_dim = e.integer("codebook_dim");
    E.vector_quantization_hidden_dimension = ej.contains("vector_quantization_hidden_dimension")
                                                 ? e.integer("vector_quantization_hidden_dimension")
                                                 : E.codebook_dim;
    E.num_quantizers = e.integer("num_quantizers");
    E.num_semantic_quantizers = e.integer("num_semantic_quantizers");
    E.sampling_rate = e.integer("sampling_rate");
    E.frame_rate = e.number("_frame_rate");
    e.expect_string("hidden_act", "gelu");
    e.expect_bool("use_causal_conv", true);
    e.expect_bool("use_conv_shortcut", false);
    e.expect_string("pad_mode", "constant");
    e.expect_bool("attention_bias", false);

    return E;
}

// decoder_config: the codec decoder (transformer, upsampling, vocoder).
DecoderConfig read_decoder(const Reader& d) {
    DecoderConfig D;
    D.codebook_size = d.integer("codebook_size");
    D.codebook_dim = d.integer("codebook_dim", 2);
    D.num_quantizers = d.integer("num_quantizers");
    D.latent_dim = d.integer("latent_dim");
    D.decoder_dim = d.integer("decoder_dim");
    D.hidden_size = d.integer("hidden_size");
    D.intermediate_size = d.integer("intermediate_size");
    D.num_hidden_layers = d.integer("num_hidden_layers", 0);
    D.num_attention_heads = d.integer("num_attention_heads");
    D.num_key_value_heads = d.integer("num_key_value_heads");
    D.head_dim = d.integer("head_dim");
    D.rms_norm_eps = d.number("rms_norm_eps");
    D.rope_theta = d.number("rope_theta");
    D.sliding_window = d.integer("sliding_window");
    D.upsample_rates = d.int_list("upsample_rates");
    D.upsampling_ratios = d.int_list("upsampling_ratios");
    d.expect_string("hidden_act", "silu");
    d.expect_bool("attention_bias", false);

    return D;
}

// The rest of the program assumes 16 ids of 0..2047 per 1920-sample frame at 24 kHz: the fields must agree.
void cross_check(const CodecConfig& c, const Reader& top, const Reader& e, const Reader& d) {
    const auto& E = c.encoder;
    const auto& D = c.decoder;
    if (E.audio_channels != 1) e.bad("audio_channels", "only mono (1) is supported");
    if (c.encoder_valid_num_quantizers != kNumCodebooks)
        top.bad("encoder_valid_num_quantizers", fmt::format("must be {}", kNumCodebooks));
    if (E.num_semantic_quantizers != 1) e.bad("num_semantic_quantizers", "must be 1");
    if (E.num_quantizers < c.encoder_valid_num_quantizers)
        e.bad("num_quantizers", "must be at least encoder_valid_num_quantizers");
    if (D.num_quantizers != kNumCodebooks) d.bad("num_quantizers", fmt::format("must be {}", kNumCodebooks));
    if (E.codebook_size != kCodebookSize) e.bad("codebook_size", fmt::format("must be {}", kCodebookSize));
    if (D.codebook_size != kCodebookSize) d.bad("codebook_size", fmt::format("must be {}", kCodebookSize));
    if (D.codebook_dim % 2 != 0) d.bad("codebook_dim", "must be even");
    if (c.input_sample_rate != kSampleRate || E.sampling_rate != kSampleRate)
        top.bad("input_sample_rate", fmt::format("must be {}", kSampleRate));
    if (c.output_sample_rate != kSampleRate) top.bad("output_sample_rate", fmt::format("must be {}", kSampleRate));
    if (c.encode_downsample_rate != kSamplesPerFrame)
        top.bad("encode_downsample_rate", fmt::format("must be {}", kSamplesPerFrame));
    if (c.decode_upsample_rate != kSamplesPerFrame)
        top.bad("decode_upsample_rate", fmt::format("must be {}", kSamplesPerFrame));
    if (E.seanet_hop() * E.downsample_stride() != c.encode_downsample_rate)
        e.bad("upsampling_ratios", fmt::format("product × 2 must equal encode_downsample_rate {}", c.encode_downsample_rate));
    if (E.downsample_kernel() < E.downsample_stride())
        e.bad("_frame_rate", "inconsistent with sampling_rate and upsampling_ratios");
    if (D.total_upsample() != c.decode_upsample_rate)
        d.bad("upsample_rates", fmt::format("product × prod(upsampling_ratios) must equal decode_upsample_rate {}",
                                            c.decode_upsample_rate));
    // Mimi only creates the 1×1 input/output projections (which the file holds) when these widths differ.
    if (E.vector_quantization_hidden_dimension != E.codebook_dim)
        e.bad("vector_quantization_hidden_dimension", "must equal codebook_dim");
    if (E.codebook_dim == E.hidden_size) e.bad("codebook_dim", "must differ from hidden_size (the layout has projections)");
    if (E.num_attention_heads % E.num_key_value_heads != 0)
        e.bad("num_key_value_heads", "must divide num_attention_heads");
    if (D.num_attention_heads % D.num_key_value_heads != 0)
        d.bad("num_key_value_heads", "must divide num_attention_heads");
    if (E.head_dim % 2 != 0) e.bad("head_dim", "must be even (rotary embedding)");
    if (D.head_dim % 2 != 0) d.bad("head_dim", "must be even (rotary embedding)");
    if (E.compress < 1 || E.num_filters % E.compress != 0) e.bad("compress", "must divide num_filters");
    if (D.decoder_dim % (int64_t(1) << D.upsample_rates.size()) != 0)
        d.bad("decoder_dim", "must be divisible by 2^len(upsample_rates)");
}

}  // namespace

CodecConfig CodecConfig::from_json(const json& j, const std::string& where) {
    if (!j.is_object()) throw InputError(fmt::format("{}: expected a JSON object", where));
    CodecConfig c;
    Reader top{j, where, ""};
    if (j.contains("model_type") && j["model_type"].is_string() &&
        j["model_type"].get<std::string>() != "qwen3_tts_tokenizer_12hz")
        top.bad("model_type", fmt::format("expected \"qwen3_tts_tokenizer_12hz\" (got \"{}\")",
                                          j["model_type"].get<std::string>()));
    c.encoder_valid_num_quantizers = top.integer("encoder_valid_num_quantizers");
    c.input_sample_rate = top.integer("input_sample_rate");
    c.output_sample_rate = top.integer("output_sample_rate");
    c.encode_downsample_rate = top.integer("encode_downsample_rate");
    c.decode_upsample_rate = top.integer("decode_upsample_rate");

    const json& ej = top.get("encoder_config");
    if (!ej.is_object()) top.bad("encoder_config", "expected an object");
    Reader e{ej, where, "encoder_config."};
    c.encoder = read_encoder(e);
    const json& dj = top.get("decoder_config");
    if (!dj.is_object()) top.bad("decoder_config", "expected an object");
    Reader d{dj, where, "decoder_config."};
    c.decoder = read_decoder(d);
    cross_check(c, top, e, d);
    return c;
}

CodecConfig CodecConfig::load(const std::string& path) {
    std::string text = io::read_file(path);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {  // syntax, and numbers out of range (8e458)
        throw InputError(fmt::format("{}: not valid JSON: {}", path, e.what()));
    }
    return from_json(j, path);
}

CodecConfig CodecConfig::real() { return CodecConfig{}; }

json CodecConfig::to_json() const {
    const auto& E = encoder;
    const auto& D = decoder;
    json j;
    j["architectures"] = {"Qwen3TTSTokenizerV2Model"};
    j["model_type"] = "qwen3_tts_tokenizer_12hz";
    j["encoder_valid_num_quantizers"] = encoder_valid_num_quantizers;
    j["input_sample_rate"] = input_sample_rate;
    j["output_sample_rate"] = output_sample_rate;
    j["decode_upsample_rate"] = decode_upsample_rate;
    j["encode_downsample_rate"] = encode_downsample_rate;
    j["decoder_config"] = {
        {"attention_bias", false}, {"attention_dropout", 0.0}, {"latent_dim", D.latent_dim},
        {"codebook_dim", D.codebook_dim}, {"codebook_size", D.codebook_size}, {"decoder_dim", D.decoder_dim},
        {"hidden_act", "silu"}, {"hidden_size", D.hidden_size}, {"intermediate_size", D.intermediate_size},
        {"layer_scale_initial_scale", 0.01}, {"max_position_embeddings", 8000}, {"head_dim", D.head_dim},
        {"num_attention_heads", D.num_attention_heads}, {"num_hidden_layers", D.num_hidden_layers},
        {"num_key_value_heads", D.num_key_value_heads}, {"num_quantizers", D.num_quantizers},
        {"num_semantic_quantizers", 1}, {"rms_norm_eps", D.rms_norm_eps}, {"rope_theta", D.rope_theta},
        {"semantic_codebook_size", 4096}, {"sliding_window", D.sliding_window},
        {"upsample_rates", D.upsample_rates}, {"upsampling_ratios", D.upsampling_ratios},
        {"vector_quantization_hidden_dimension", D.codebook_dim}};
    j["encoder_config"] = {
        {"_frame_rate", E.frame_rate}, {"attention_bias", false}, {"attention_dropout", 0.0},
        {"audio_channels", E.audio_channels}, {"codebook_dim", E.codebook_dim}, {"codebook_size", E.codebook_size},
        {"compress", E.compress}, {"dilation_growth_rate", E.dilation_growth_rate}, {"dtype", "float32"},
        {"head_dim", E.head_dim}, {"hidden_act", "gelu"}, {"hidden_size", E.hidden_size},
        {"initializer_range", 0.02}, {"intermediate_size", E.intermediate_size}, {"kernel_size", E.kernel_size},
        {"last_kernel_size", E.last_kernel_size}, {"layer_scale_initial_scale", 0.01},
        {"max_position_embeddings", 8000}, {"norm_eps", E.norm_eps}, {"normalize", false},
        {"num_attention_heads", E.num_attention_heads}, {"num_filters", E.num_filters},
        {"num_hidden_layers", E.num_hidden_layers}, {"num_key_value_heads", E.num_key_value_heads},
        {"num_quantizers", E.num_quantizers}, {"num_residual_layers", E.num_residual_layers},
        {"num_semantic_quantizers", E.num_semantic_quantizers}, {"pad_mode", "constant"},
        {"residual_kernel_size", E.residual_kernel_size}, {"rope_theta", E.rope_theta},
        {"sampling_rate", E.sampling_rate}, {"sliding_window", E.sliding_window},
        {"transformers_version", "4.57.0.dev0"}, {"trim_right_ratio", 1.0}, {"upsample_groups", E.hidden_size},
        {"upsampling_ratios", E.upsampling_ratios}, {"use_cache", false}, {"use_causal_conv", true},
        {"use_conv_shortcut", false}, {"use_streaming", false},
        {"vector_quantization_hidden_dimension", E.vector_quantization_hidden_dimension}};
    j["transformers_version"] = "4.57.3";
    return j;
}

}  // namespace alexandria::codec
