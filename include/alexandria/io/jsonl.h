#pragma once
// JSON and JSON Lines reading with errors that name file, line and field: every exception the JSON library
// raises (syntax, a number out of range) becomes an InputError here, where the file is read.
#include <nlohmann/json_fwd.hpp>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace alexandria::io {


// Calls `fn(line_number, object)` for every non-blank line. A line that is not valid UTF-8 or not a JSON
// object throws InputError("file:line: ...") unless `on_error` is given, which then receives the message
// and reading continues.
void read_jsonl(const std::string& path, const std::function<void(int line, const nlohmann::json& obj)>& fn,
                const std::function<void(int line, const std::string& message)>& on_error = nullptr);

// A whole file (or text read from `label`) as one JSON document; InputError "label: invalid JSON ..." otherwise.
nlohmann::json read_json_file(const std::string& path);
nlohmann::json parse_json_text(const std::string& text, const std::string& label);

// The library's reason without its "[json.exception.type.id] " prefix, for messages that name file and line.
std::string json_reason(const std::exception& e);

// Field access with messages of the form "file:line: field 'text': expected a string".
std::string require_string(const nlohmann::json& obj, const char* field, const std::string& where);
std::optional<std::string> optional_string(const nlohmann::json& obj, const char* field, const std::string& where);

// True when s is valid UTF-8; otherwise *bad_offset is the first offending byte.
bool valid_utf8(const std::string& s, size_t* bad_offset = nullptr);

}  // namespace alexandria::io
