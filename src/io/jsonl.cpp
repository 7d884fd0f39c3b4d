#include "alexandria/io/jsonl.h"

#include <fmt/format.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace alexandria::io {

bool valid_utf8(const std::string& s, size_t* bad_offset) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t n = s.size(), i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) { ++i; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
        else { if (bad_offset) *bad_offset = i; return false; }
        if (i + len > n) { if (bad_offset) *bad_offset = i; return false; }
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80) { if (bad_offset) *bad_offset = i; return false; }
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        // overlong forms, surrogates, beyond U+10FFFF
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
            if (bad_offset) *bad_offset = i;
            return false;
        }
        i += len;
    }
    return true;
}

std::string json_reason(const std::exception& e) {
    // "[json.exception.out_of_range.406] number overflow parsing '8e458'" -> "number overflow parsing '8e458'"
    std::string w = e.what();
    auto at = w.find("] ");
    return at == std::string::npos ? w : w.substr(at + 2);
}

nlohmann::json parse_json_text(const std::string& text, const std::string& label) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        throw InputError(fmt::format("{}: invalid JSON at byte {}: {}", label, e.byte, json_reason(e)));
    } catch (const nlohmann::json::exception& e) {
        throw InputError(fmt::format("{}: invalid JSON: {}", label, json_reason(e)));
    }
}

nlohmann::json read_json_file(const std::string& path) { return parse_json_text(read_file(path), path); }

void read_jsonl(const std::string& path, const std::function<void(int, const nlohmann::json&)>& fn,
                const std::function<void(int, const std::string&)>& on_error) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw InputError(fmt::format("{}: is a folder, expected a JSONL file", path));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot read (missing or unreadable)", path));
    std::string line;
    int lineno = 0;
    auto report = [&](const std::string& msg) {
        if (on_error) on_error(lineno, msg);
        else throw InputError(msg);
    };
    while (std::getline(in, line)) {
        ++lineno;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (lineno == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // BOM
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        size_t bad = 0;
        if (!valid_utf8(line, &bad)) {
            report(fmt::format("{}:{}: not valid UTF-8 (byte {} of the line)", path, lineno, bad + 1));
            continue;
        }
        nlohmann::json obj;
        try {
            obj = nlohmann::json::parse(line);
        } catch (const nlohmann::json::parse_error& e) {
            report(fmt::format("{}:{}: invalid JSON at column {}", path, lineno, e.byte));
            continue;
        } catch (const nlohmann::json::exception& e) {
            // out_of_range.406: a number beyond double's range (8e458); the parser names the number, not its column
            report(fmt::format("{}:{}: invalid JSON: {}", path, lineno, json_reason(e)));
            continue;
        }
        if (!obj.is_object()) {
            report(fmt::format("{}:{}: expected a JSON object, got {}", path, lineno, obj.type_name()));
            continue;
        }
        fn(lineno, obj);
    }
}

std::string require_string(const nlohmann::json& obj, const char* field, const std::string& where) {
    auto it = obj.find(field);
    if (it == obj.end()) throw InputError(fmt::format("{}: missing field '{}'", where, field));
    if (!it->is_string()) throw InputError(fmt::format("{}: field '{}': expected a string, got {}", where, field, it->type_name()));
    return it->get<std::string>();
}

std::optional<std::string> optional_string(const nlohmann::json& obj, const char* field, const std::string& where) {
    auto it = obj.find(field);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw InputError(fmt::format("{}: field '{}': expected a string, got {}", where, field, it->type_name()));
    return it->get<std::string>();
}

}  // namespace alexandria::io
