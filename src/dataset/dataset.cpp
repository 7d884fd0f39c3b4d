#include "alexandria/dataset/dataset.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"

namespace alexandria::dataset {

std::string severity_name(Severity s) {
    switch (s) {
        case Severity::Error: return "error";
        case Severity::Warning: return "warning";
        case Severity::Note: return "note";
    }
    return "?";
}

bool Entry::has_errors() const {
    for (auto& p : problems)
        if (p.severity == Severity::Error) return true;
    return false;
}

bool Dataset::has_errors() const {
    for (auto& p : problems)
        if (p.severity == Severity::Error) return true;
    for (auto& e : entries)
        if (e.has_errors()) return true;
    return false;
}

bool blank(const std::string& text) {
    // ASCII whitespace plus the UTF-8 no-break and ideographic spaces people paste from documents.
    size_t i = 0;
    while (i < text.size()) {
        unsigned char c = static_cast<unsigned char>(text[i]);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') { ++i; continue; }
        if (text.compare(i, 2, "\xC2\xA0") == 0) { i += 2; continue; }
        if (text.compare(i, 3, "\xE3\x80\x80") == 0) { i += 3; continue; }
        return false;
    }
    return true;
}

std::string Dataset::display(const fs::path& p) const {
    std::error_code ec;
    auto rel = p.lexically_relative(dir);
    if (!rel.empty() && rel.native().rfind("..", 0) != 0) return rel.string();
    (void)ec;
    return p.string();
}

std::optional<fs::path> Dataset::reference_audio(std::string* source) const {
    if (!entries.empty() && entries.front().ref_audio) {
        if (source) *source = fmt::format("metadata line {} ref_audio", entries.front().line);
        if (entries.front().ref_audio_path) return entries.front().ref_audio_path;
        return std::nullopt;  // the line's ref_audio did not resolve; its problem says why
    }
    if (ref_wav) {
        if (source) *source = kRefAudioFile;
        return ref_wav;
    }
    if (source) source->clear();
    return std::nullopt;
}

namespace {

std::string path_problem_code(const std::string& message) {
    if (message.find("symlink loop") != std::string::npos) return "symlink-loop";
    if (message.find("outside") != std::string::npos) return "path-outside";
    return "bad-path";
}

void add(std::vector<Problem>& out, Severity s, std::string code, std::string file, int line, std::string field,
         std::string message) {
    out.push_back(Problem{s, std::move(code), std::move(file), line, std::move(field), std::move(message)});
}

// Reads one string field; records a problem and returns nullopt when it is absent or not a string.
std::optional<std::string> string_field(const nlohmann::json& obj, const char* field, bool required,
                                        const std::string& where, const std::string& file, int line,
                                        std::vector<Problem>& problems) {
    auto it = obj.find(field);
    if (it == obj.end() || (it->is_null() && !required)) {
        if (required)
            add(problems, Severity::Error, "missing-field", file, line, field,
                fmt::format("{}: field '{}': missing", where, field));
        return std::nullopt;
    }
    if (!it->is_string()) {
        add(problems, Severity::Error, "invalid-field", file, line, field,
            fmt::format("{}: field '{}': expected a string, got {}", where, field, it->type_name()));
        return std::nullopt;
    }
    return it->get<std::string>();
}

}  // namespace

Dataset Dataset::load(const fs::path& dir_in) {
    std::error_code ec;
    if (!fs::exists(dir_in, ec)) throw InputError(fmt::format("{}: dataset folder not found", dir_in.string()));
    if (!fs::is_directory(dir_in, ec)) throw InputError(fmt::format("{}: not a folder (a dataset is a folder with "
                                                                    "metadata.jsonl)", dir_in.string()));
    Dataset ds;
    ds.dir = fs::weakly_canonical(fs::absolute(dir_in), ec);
    if (ec) throw InputError(fmt::format("{}: cannot resolve the folder: {}", dir_in.string(), ec.message()));
    ds.metadata_path = ds.dir / kMetadataFile;
    // Messages name the metadata file as the user would type it.
    const std::string meta_display = (dir_in / kMetadataFile).string();
    ds.metadata_display = meta_display;

    auto status = fs::status(ds.metadata_path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) {
        add(ds.problems, Severity::Error, "unreadable-metadata", meta_display, 0, "",
            fmt::format("{}: cannot read: {}", meta_display, ec.message()));
    } else if (!fs::exists(status)) {
        add(ds.problems, Severity::Error, "missing-metadata", meta_display, 0, "",
            fmt::format("{}: missing; a dataset folder needs metadata.jsonl with one "
                        "{{\"audio_filepath\": ..., \"text\": ...}} per line", meta_display));
    } else if (!fs::is_regular_file(status)) {
        add(ds.problems, Severity::Error, "unreadable-metadata", meta_display, 0, "",
            fmt::format("{}: not a regular file", meta_display));
    } else {
        auto on_line = [&](int line, const nlohmann::json& obj) {
            Entry e;
            e.line = line;
            const std::string where = fmt::format("{}:{}", meta_display, line);
            const char* audio_field = obj.contains("audio_filepath") || !obj.contains("audio") ? "audio_filepath"
                                                                                               : "audio";
            if (auto a = string_field(obj, audio_field, true, where, meta_display, line, e.problems)) {
                e.audio = *a;
                try {
                    e.audio_path = io::resolve_inside(ds.dir, *a, fmt::format("{}: field '{}'", where, audio_field));
                } catch (const InputError& err) {
                    add(e.problems, Severity::Error, path_problem_code(err.what()), meta_display, line, audio_field,
                        err.what());
                }
            }
            if (auto t = string_field(obj, "text", true, where, meta_display, line, e.problems)) e.text = *t;
            if (auto r = string_field(obj, "ref_audio", false, where, meta_display, line, e.problems)) {
                e.ref_audio = *r;
                try {
                    e.ref_audio_path = io::resolve_inside(ds.dir, *r, fmt::format("{}: field 'ref_audio'", where));
                } catch (const InputError& err) {
                    add(e.problems, Severity::Error, path_problem_code(err.what()), meta_display, line, "ref_audio",
                        err.what());
                }
            }
            ds.entries.push_back(std::move(e));
        };
        auto on_error = [&](int line, const std::string& message) {
            std::string code = message.find("UTF-8") != std::string::npos        ? "not-utf8"
                               : message.find("expected a JSON object") != std::string::npos ? "not-an-object"
                                                                                             : "invalid-json";
            add(ds.problems, Severity::Error, code, meta_display, line, "", message);
        };
        try {
            io::read_jsonl(ds.metadata_path.string(), on_line, on_error);
            // read_jsonl names the file by the path it was given; keep the user's spelling in messages.
            for (auto& p : ds.problems) {
                auto pos = p.message.find(ds.metadata_path.string());
                if (pos == 0 && ds.metadata_path.string() != meta_display)
                    p.message.replace(0, ds.metadata_path.string().size(), meta_display);
            }
        } catch (const InputError& err) {
            add(ds.problems, Severity::Error, "unreadable-metadata", meta_display, 0, "", err.what());
        }
        if (ds.entries.empty() && ds.problems.empty())
            add(ds.problems, Severity::Error, "no-entries", meta_display, 0, "",
                fmt::format("{}: no entries (the file is empty or only blank lines)", meta_display));
    }

    auto ref = ds.dir / kRefAudioFile;
    if (fs::exists(ref, ec)) ds.ref_wav = ref;
    auto ref_text = ds.dir / kRefTextFile;
    if (fs::is_regular_file(ref_text, ec)) {
        try {
            ds.ref_text = io::read_file(ref_text);
            ds.ref_text_utf8 = io::valid_utf8(*ds.ref_text);
        } catch (const InputError& err) {
            add(ds.problems, Severity::Error, "unreadable-ref-text", (dir_in / kRefTextFile).string(), 0, "",
                err.what());
        }
    }
    return ds;
}

}  // namespace alexandria::dataset
