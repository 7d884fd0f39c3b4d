#pragma once
// ASCII string helpers for the parsers of user files and option values (scripts, dataset rows, language names).
#include <cctype>
#include <string>

namespace alexandria::io {

// s without its leading and trailing ASCII whitespace (space, \t, \r, \n, \f, \v).
inline std::string trim(const std::string& s) {
    const char* ws = " \t\r\n\f\v";
    const auto a = s.find_first_not_of(ws);
    if (a == std::string::npos) return "";
    return s.substr(a, s.find_last_not_of(ws) - a + 1);
}

// s with its ASCII letters lowered; every other byte (UTF-8 included) as it was.
inline std::string ascii_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace alexandria::io
