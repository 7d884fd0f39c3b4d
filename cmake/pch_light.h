// Precompiled for the light objects: everything the torch PCH has except libtorch. The light objects are the
// code the light commands run (`--help`, `recommend`, `dataset check|split`, `tokenize`, `adapter info`); they
// are compiled without libtorch's include path, so an include of torch there fails to build.
#pragma once
#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>
