#pragma once
namespace alexandria {
// The tool version, recorded in adapters and reports.
constexpr const char* kVersion = "0.1.0";
}
