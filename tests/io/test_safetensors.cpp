#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <cstring>
#include <fstream>

#include "alexandria/io/error.h"
#include "alexandria/io/safetensors.h"
#include "support/test_support.h"

using namespace alexandria;
using alexandria::test::TempDir;

namespace {
// Builds a raw safetensors buffer from a header string and a data section size.
std::vector<uint8_t> raw(const std::string& header, size_t data_bytes, uint64_t claimed_len = UINT64_MAX) {
    uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
    std::vector<uint8_t> buf(8 + header.size() + data_bytes, 0);
    for (int i = 0; i < 8; ++i) buf[i] = uint8_t((n >> (8 * i)) & 0xff);
    std::memcpy(buf.data() + 8, header.data(), header.size());
    return buf;
}
std::string parse_error(const std::vector<uint8_t>& b) {
    try {
        io::SafetensorsFile::from_memory(b.data(), b.size(), "mem");
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("safetensors round trip keeps every dtype, shape, value and metadata") {
    TempDir dir;
    auto path = (dir / "t.safetensors").string();
    std::vector<std::pair<std::string, at::Tensor>> ts = {
        {"a.f32", torch::randn({3, 4})},
        {"b.bf16", torch::randn({5}).to(torch::kBFloat16)},
        {"c.f16", torch::randn({2, 2}).to(torch::kFloat16)},
        {"d.i64", torch::arange(7)},
        {"e.i32", torch::arange(3).to(torch::kInt32)},
        {"f.i16", torch::arange(3).to(torch::kInt16)},
        {"g.i8", torch::arange(3).to(torch::kInt8)},
        {"h.u8", torch::arange(3).to(torch::kUInt8)},
        {"i.bool", torch::tensor({true, false, true})},
        {"j.scalar", torch::tensor(3.5f)},
        {"k.empty", torch::zeros({0, 4})},
    };
    io::save_safetensors(path, ts, {{"format", "pt"}});
    io::SafetensorsFile f(path);
    REQUIRE(f.tensors().size() == ts.size());
    REQUIRE(f.metadata().at("format") == "pt");
    for (auto& [name, t] : ts) {
        auto v = f.view(name);
        REQUIRE(v.scalar_type() == t.scalar_type());
        REQUIRE(v.sizes() == t.sizes());
        REQUIRE(torch::equal(v, t));
    }
    REQUIRE_THROWS_AS(f.info("nope"), InputError);
    // no temp file left behind
    int files = 0;
    for (auto& e : std::filesystem::directory_iterator(dir.path)) (void)e, ++files;
    REQUIRE(files == 1);
}

TEST_CASE("released tensor pages read back the same bytes") {
    // load_state releases each tensor's pages after copying it; a later view (a second load from the same
    // mapping) must still see the file's bytes, not zeros.
    TempDir dir;
    auto path = (dir / "big.safetensors").string();
    auto big = torch::randn({256, 1024});  // 1 MiB: many whole pages
    io::save_safetensors(path, {{"small", torch::arange(3).to(torch::kFloat32)}, {"big", big}});
    io::SafetensorsFile f(path);
    auto before = f.view("big").clone();
    f.release("big");
    f.release("small");  // smaller than a page: nothing to hand back, and no harm
    CHECK(torch::equal(f.view("big"), big));
    CHECK(torch::equal(before, big));
    CHECK(torch::equal(f.view("small"), torch::arange(3).to(torch::kFloat32)));
    auto mem = raw(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
    auto m = io::SafetensorsFile::from_memory(mem.data(), mem.size(), "mem");
    m.release("x");  // no mapping: a no-op
    CHECK(m.view("x").numel() == 2);
}

TEST_CASE("a shared view outlives the file object and never writes to the file") {
    TempDir dir;
    auto path = (dir / "table.safetensors").string();
    auto table = torch::randn({512, 256}).to(torch::kBFloat16);
    io::save_safetensors(path, {{"table", table}});
    torch::Tensor v;
    {
        io::SafetensorsFile f(path);
        v = f.view_shared("table");
    }  // the mapping stays while v lives
    CHECK(torch::equal(v, table));
    v.mul_(2);  // copy-on-write: the process sees its change, the file does not
    CHECK(torch::equal(v, table * 2));
    io::SafetensorsFile again(path);
    CHECK(torch::equal(again.view("table"), table));
    auto mem = raw(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8);
    auto m = io::SafetensorsFile::from_memory(mem.data(), mem.size(), "mem");
    auto copy = m.view_shared("x");  // no mapping to keep alive: a copy
    CHECK(copy.data_ptr() != m.view("x").data_ptr());
}

TEST_CASE("safetensors header is untrusted input") {
    SECTION("shorter than 8 bytes") {
        std::vector<uint8_t> b{1, 2, 3};
        REQUIRE_THAT(parse_error(b), Catch::Contains("shorter than the 8-byte"));
    }
    SECTION("huge header size") {
        auto b = raw("{}", 0, 1ull << 60);
        REQUIRE_THAT(parse_error(b), Catch::Contains("exceeds the limit"));
    }
    SECTION("header size past end of file") {
        auto b = raw("{}", 0, 1000);
        REQUIRE_THAT(parse_error(b), Catch::Contains("runs past the end"));
    }
    SECTION("invalid JSON") {
        auto b = raw("{\"a\": [", 0);
        REQUIRE_THAT(parse_error(b), Catch::Contains("not valid JSON"));
    }
    SECTION("not an object") {
        auto b = raw("[1,2]", 0);
        REQUIRE_THAT(parse_error(b), Catch::Contains("not a JSON object"));
    }
    SECTION("offsets out of range") {
        auto b = raw(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
        REQUIRE_THAT(parse_error(b), Catch::Contains("outside the data section"));
    }
    SECTION("overlapping offsets") {
        auto b = raw(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 16);
        REQUIRE_THAT(parse_error(b), Catch::Contains("overlap"));
    }
    SECTION("dtype × shape does not match the byte length") {
        auto b = raw(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
        REQUIRE_THAT(parse_error(b), Catch::Contains("needs 12 bytes"));
    }
    SECTION("unknown dtype") {
        auto b = raw(R"({"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", 1);
        REQUIRE_THAT(parse_error(b), Catch::Contains("unsupported dtype"));
    }
    SECTION("negative shape") {
        auto b = raw(R"({"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1);
        REQUIRE_THAT(parse_error(b), Catch::Contains("shape"));
    }
    SECTION("offsets begin after end") {
        auto b = raw(R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", 8);
        REQUIRE_THAT(parse_error(b), Catch::Contains("outside"));
    }
    SECTION("huge shape product does not overflow") {
        auto b = raw(R"({"x":{"dtype":"F64","shape":[1099511627776,1099511627776,1099511627776],"data_offsets":[0,8]}})", 8);
        REQUIRE_FALSE(parse_error(b).empty());
    }
}

TEST_CASE("safetensors file errors name the file") {
    TempDir dir;
    auto path = (dir / "bad.safetensors").string();
    std::ofstream(path) << "hello";
    try {
        io::SafetensorsFile f(path);
        FAIL("expected an error");
    } catch (const InputError& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("bad.safetensors"));
    }
    REQUIRE_THROWS_AS(io::SafetensorsFile((dir / "missing.safetensors").string()), InputError);
}
