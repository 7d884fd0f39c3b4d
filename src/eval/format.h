#pragma once
// Number formats shared by the terminal table and report.html ("-" for a figure that was not measured).
#include <cmath>
#include <string>

#include <fmt/format.h>

namespace alexandria::eval::fmtx {

inline std::string f3(double x) { return std::isfinite(x) ? fmt::format("{:.3f}", x) : "-"; }
inline std::string f2(double x) { return std::isfinite(x) ? fmt::format("{:.2f}", x) : "-"; }
inline std::string f1(double x) { return std::isfinite(x) ? fmt::format("{:.1f}", x) : "-"; }
inline std::string frac(int k, int n) { return n > 0 ? fmt::format("{}/{}", k, n) : "-"; }

}  // namespace alexandria::eval::fmtx
