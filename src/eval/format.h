#pragma once
// Number formats shared by the terminal table, report.html and eval.json ("-" or null for a figure that was not
// measured).
#include <cmath>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace alexandria::eval::fmtx {

inline std::string f3(double x) { return std::isfinite(x) ? fmt::format("{:.3f}", x) : "-"; }
inline std::string f2(double x) { return std::isfinite(x) ? fmt::format("{:.2f}", x) : "-"; }
inline std::string f1(double x) { return std::isfinite(x) ? fmt::format("{:.1f}", x) : "-"; }
inline std::string frac(int k, int n) { return n > 0 ? fmt::format("{}/{}", k, n) : "-"; }

// A figure for eval.json: the number, or null where it was not measured (JSON has no NaN).
inline nlohmann::json json_number(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }
// A figure read back from eval.json: NaN for null or absent.
inline double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

}  // namespace alexandria::eval::fmtx
