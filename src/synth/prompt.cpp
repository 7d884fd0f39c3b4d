#include "alexandria/synth/prompt.h"

#include <algorithm>
#include <cctype>

#include "alexandria/io/error.h"
#include "alexandria/io/strings.h"

namespace alexandria::synth {

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
    return out;
}

int64_t language_id(const std::string& lang, const model::ModelConfig& cfg) {
    auto langs = cfg.supported_languages();
    if (std::find(langs.begin(), langs.end(), lang) == langs.end() || lang == "auto")
        throw InputError(fmt::format("language '{}' is not supported by this model (supported: {})", lang,
                                     join(langs)));
    return cfg.talker.codec_language_id.at(lang);
}

}  // namespace

TextLayout parse_text_layout(const std::string& s) {
    auto l = io::ascii_lower(s);
    if (l == "streaming") return TextLayout::Streaming;
    if (l == "non-streaming" || l == "non_streaming" || l == "nonstreaming") return TextLayout::NonStreaming;
    throw InputError(fmt::format("text layout '{}': expected 'streaming' or 'non-streaming'", s));
}

std::string to_string(TextLayout l) { return l == TextLayout::Streaming ? "streaming" : "non-streaming"; }

std::string describe(const PromptRow& r) {
    auto part = [](const PromptPart& p) -> std::string {
        switch (p.kind) {
            case PromptPart::Kind::None: return "";
            case PromptPart::Kind::Text: return fmt::format("T({})", p.value);
            case PromptPart::Kind::Codec: return fmt::format("C({})", p.value);
            case PromptPart::Kind::Speaker: return "spk";
            case PromptPart::Kind::RefFrame: return fmt::format("F(ref_{})", p.value);
        }
        return "?";
    };
    auto a = part(r.text), b = part(r.codec);
    if (a.empty()) return b;
    if (b.empty()) return a;
    return a + "+" + b;
}

std::vector<int64_t> codec_prefix_ids(const std::string& language, const std::string& speaker,
                                      const model::ModelConfig& cfg) {
    const auto& t = cfg.talker;
    auto lang = io::ascii_lower(language.empty() ? "auto" : language);
    std::optional<int64_t> lang_id;
    if (lang != "auto") lang_id = language_id(lang, cfg);
    // Dialect override (upstream M:2120-2124): a dialect speaker speaks its dialect when the language is
    // Chinese or left to "auto".
    if (!speaker.empty() && (lang == "chinese" || lang == "auto")) {
        auto it = t.spk_is_dialect.find(io::ascii_lower(speaker));
        if (it != t.spk_is_dialect.end() && !it->second.empty()) {
            auto d = t.codec_language_id.find(it->second);
            if (d == t.codec_language_id.end())
                throw InputError(fmt::format("{}: speaker '{}' names dialect '{}', which codec_language_id lacks",
                                             cfg.source, speaker, it->second));
            lang_id = d->second;
        }
    }
    if (!lang_id) return {t.codec_nothink_id, t.codec_think_bos_id, t.codec_think_eos_id};
    return {t.codec_think_id, t.codec_think_bos_id, *lang_id, t.codec_think_eos_id};
}

PromptRecipe build_prompt(const PromptRequest& req, const model::ModelConfig& cfg) {
    const auto& t = cfg.talker;
    if (req.role.size() != 3)
        throw InputError(fmt::format("prompt role must be 3 tokens (<|im_start|>assistant\\n), got {}", req.role.size()));
    if (req.content.empty()) throw InputError("the text to speak has no tokens");
    if (req.icl() && req.ref_content.empty())
        throw InputError("voice clone ICL needs the reference transcript (--ref-text)");
    if (req.icl() && req.voice != VoiceKind::SpeakerVector)
        throw InputError("ICL reference codes need a speaker vector prompt (voice clone on a Base model)");

    std::string speaker;
    if (req.voice == VoiceKind::NamedSpeaker) {
        speaker = io::ascii_lower(req.speaker);
        if (!t.spk_id.count(speaker)) {
            auto sp = cfg.supported_speakers();
            throw InputError(fmt::format("speaker '{}' is not in this model (speakers: {})", req.speaker,
                                         sp.empty() ? std::string("none; use a CustomVoice checkpoint") : join(sp)));
        }
    }

    const int64_t PAD = cfg.tts_pad_token_id, BOS = cfg.tts_bos_token_id, EOSt = cfg.tts_eos_token_id;
    using P = PromptPart;
    PromptRecipe r;
    auto& rows = r.prefill;

    for (int32_t id : req.instruct) rows.push_back({P::text(id), P::none()});
    for (int32_t id : req.role) rows.push_back({P::text(id), P::none()});

    // K' = prefix + [speaker slot] + [codec pad, codec bos]; rows are its first n-1 entries, text PAD except
    // BOS over the codec pad. The final codec bos is consumed by the tail.
    std::vector<P> kprime;
    for (int64_t id : codec_prefix_ids(req.language, speaker, cfg)) kprime.push_back(P::codec(id));
    if (req.voice == VoiceKind::SpeakerVector) kprime.push_back(P::speaker());
    if (req.voice == VoiceKind::NamedSpeaker) kprime.push_back(P::codec(t.spk_id.at(speaker)));
    kprime.push_back(P::codec(t.codec_pad_id));
    kprime.push_back(P::codec(t.codec_bos_id));
    for (size_t i = 0; i + 1 < kprime.size(); ++i)
        rows.push_back({P::text(i + 2 == kprime.size() ? BOS : PAD), kprime[i]});

    const auto& tc = req.content;
    if (!req.icl()) {
        if (req.layout == TextLayout::Streaming) {
            rows.push_back({P::text(tc[0]), P::codec(t.codec_bos_id)});
            for (size_t i = 1; i < tc.size(); ++i) r.trailing.push_back({P::text(tc[i]), P::none()});
            r.trailing.push_back({P::text(EOSt), P::none()});
        } else {
            for (int32_t id : tc) rows.push_back({P::text(id), P::codec(t.codec_pad_id)});
            rows.push_back({P::text(EOSt), P::codec(t.codec_pad_id)});
            rows.push_back({P::text(PAD), P::codec(t.codec_bos_id)});
            r.trailing.push_back({P::text(PAD), P::none()});
        }
        return r;
    }

    // ICL (upstream generate_icl_prompt): X = text of reference + target + EOSt, Y = codec bos + reference frames.
    std::vector<P> X, Y;
    for (int32_t id : req.ref_content) X.push_back(P::text(id));
    for (int32_t id : tc) X.push_back(P::text(id));
    X.push_back(P::text(EOSt));
    Y.push_back(P::codec(t.codec_bos_id));
    for (int64_t j = 0; j < req.ref_frames; ++j) Y.push_back(P::ref_frame(j));
    if (req.layout == TextLayout::NonStreaming) {
        for (auto& x : X) rows.push_back({x, P::codec(t.codec_pad_id)});
        for (auto& y : Y) rows.push_back({P::text(PAD), y});
        r.trailing.push_back({P::text(PAD), P::none()});
    } else if (X.size() > Y.size()) {
        for (size_t i = 0; i < Y.size(); ++i) rows.push_back({X[i], Y[i]});
        for (size_t i = Y.size(); i < X.size(); ++i) r.trailing.push_back({X[i], P::none()});
    } else {
        for (size_t i = 0; i < Y.size(); ++i) rows.push_back({i < X.size() ? X[i] : P::text(PAD), Y[i]});
        r.trailing.push_back({P::text(PAD), P::none()});
    }
    return r;
}

namespace {

// Sums the parts of `rows` into [N, H]; `text`/`codec`/`frames` are the already embedded tables.
struct Tables {
    std::vector<int64_t> text_ids, codec_ids;
    std::map<int64_t, int64_t> text_slot, codec_slot;
    void add(const PromptPart& p) {
        if (p.kind == PromptPart::Kind::Text && !text_slot.count(p.value)) {
            text_slot[p.value] = static_cast<int64_t>(text_ids.size());
            text_ids.push_back(p.value);
        }
        if (p.kind == PromptPart::Kind::Codec && !codec_slot.count(p.value)) {
            codec_slot[p.value] = static_cast<int64_t>(codec_ids.size());
            codec_ids.push_back(p.value);
        }
    }
};

}  // namespace

PromptTensors embed_prompt(const PromptRecipe& recipe, const PromptEmbedders& emb, int64_t tts_pad_id,
                           const torch::Tensor& speaker, const torch::Tensor& ref_codes) {
    if (recipe.prefill.empty()) throw InputError("empty prompt");
    Tables tab;
    tab.add(PromptPart::text(tts_pad_id));
    bool needs_speaker = false, needs_frames = false;
    for (const auto* rows : {&recipe.prefill, &recipe.trailing})
        for (const auto& r : *rows)
            for (const auto* p : {&r.text, &r.codec}) {
                tab.add(*p);
                needs_speaker |= p->kind == PromptPart::Kind::Speaker;
                needs_frames |= p->kind == PromptPart::Kind::RefFrame;
            }
    if (needs_speaker && !speaker.defined()) throw InputError("this prompt needs a speaker vector");
    if (needs_frames && !ref_codes.defined()) throw InputError("this prompt needs reference codes");

    auto ids = [](const std::vector<int64_t>& v) { return torch::tensor(v, torch::kLong); };
    torch::Tensor text_tab = emb.text(ids(tab.text_ids));
    torch::Device dev = text_tab.device();
    torch::Tensor codec_tab = tab.codec_ids.empty() ? torch::Tensor() : emb.codec(ids(tab.codec_ids).to(dev));
    torch::Tensor frame_tab = needs_frames ? emb.frame(ref_codes.to(dev, torch::kLong)) : torch::Tensor();
    torch::Tensor spk = needs_speaker ? speaker.to(dev, text_tab.scalar_type()).reshape({-1}) : torch::Tensor();
    if (needs_speaker && spk.size(0) != text_tab.size(1))
        throw InputError(fmt::format("speaker vector has {} values, the talker expects {}", spk.size(0),
                                     text_tab.size(1)));

    auto part = [&](const PromptPart& p) -> torch::Tensor {
        switch (p.kind) {
            case PromptPart::Kind::Text: return text_tab[tab.text_slot.at(p.value)];
            case PromptPart::Kind::Codec: return codec_tab[tab.codec_slot.at(p.value)];
            case PromptPart::Kind::Speaker: return spk;
            case PromptPart::Kind::RefFrame:
                if (p.value >= frame_tab.size(0)) throw InputError("reference frame index out of range");
                return frame_tab[p.value];
            case PromptPart::Kind::None: break;
        }
        return {};
    };
    auto stack = [&](const std::vector<PromptRow>& rows) {
        std::vector<torch::Tensor> out;
        out.reserve(rows.size());
        for (const auto& r : rows) {
            auto a = part(r.text), b = part(r.codec);
            if (a.defined() && b.defined()) out.push_back(a + b);
            else if (a.defined()) out.push_back(a);
            else if (b.defined()) out.push_back(b);
            else throw InputError("prompt row with no parts");
        }
        return torch::stack(out);
    };
    PromptTensors t;
    t.pad = text_tab[tab.text_slot.at(tts_pad_id)];
    t.prefill = stack(recipe.prefill);
    t.trailing = recipe.trailing.empty() ? t.pad.unsqueeze(0) : stack(recipe.trailing);
    return t;
}

}  // namespace alexandria::synth
