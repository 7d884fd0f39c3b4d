// The tokenizer's table cache: a second load of the real vocabulary reads the finished tables back instead of
// parsing 4.3 MB, and gives exactly the same tokenizer; a damaged or stale cache file is rebuilt, never trusted.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "alexandria/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace alexandria::text;

namespace {

fs::path shared() {
    const char* s = std::getenv("ALEXANDRIA_SHARED_DIR");
    return s ? fs::path(s) : fs::path(ALEXANDRIA_TEST_SOURCE_DIR) / ".." / "shared";
}

struct Scratch {
    fs::path path;
    Scratch() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("alexandria-tokcache-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Points ALEXANDRIA_CACHE at a fresh folder for the test's lifetime.
struct CacheHome {
    Scratch dir;
    std::string old;
    bool had = false;
    CacheHome() {
        if (const char* c = std::getenv("ALEXANDRIA_CACHE")) had = true, old = c;
        setenv("ALEXANDRIA_CACHE", dir.path.c_str(), 1);
    }
    ~CacheHome() {
        if (had) setenv("ALEXANDRIA_CACHE", old.c_str(), 1);
        else unsetenv("ALEXANDRIA_CACHE");
    }
    std::vector<fs::path> files() const {
        std::vector<fs::path> out;
        if (fs::exists(dir.path / "tokenizer"))
            for (auto& e : fs::directory_iterator(dir.path / "tokenizer")) out.push_back(e.path());
        return out;
    }
};

const char* kSamples[] = {"Hello world.", "The ancient library stood at the crossroads of two forgotten paths.",
                          "<|im_start|>assistant\nChapter one.<|im_end|>", "Zwölf Boxkämpfer jagen Viktor 123456789.",
                          "日本語のテキスト、そして emoji 🎉🎉", "   spaces\t\ttabs\n\nnewlines  "};

void same_tokenizer(const Tokenizer& a, const Tokenizer& b) {
    CHECK(a.vocab_size() == b.vocab_size());
    CHECK(a.merge_count() == b.merge_count());
    CHECK(a.added_tokens().size() == b.added_tokens().size());
    for (const char* t : kSamples) {
        INFO(t);
        auto ids = a.encode(t);
        CHECK(ids == b.encode(t));
        CHECK(a.decode(ids) == b.decode(ids));
    }
    for (int32_t id : {0, 1, 9707, 151643, 151644, 151645})
        if (id < a.vocab_size()) CHECK(a.id_to_token(id) == b.id_to_token(id));
}

}  // namespace

TEST_CASE("a cached load of the real vocabulary is the same tokenizer", "[text][cache]") {
    CacheHome cache;
    const auto folder = (shared() / "reference" / "text-tokenizer").string();
    Tokenizer first = Tokenizer::from_folder(folder);
    auto files = cache.files();
    REQUIRE(files.size() == 1);
    const auto written = fs::last_write_time(files[0]);
    Tokenizer second = Tokenizer::from_folder(folder);
    CHECK(fs::last_write_time(files[0]) == written);  // read, not rewritten
    same_tokenizer(first, second);
    CHECK(first.vocab_size() == 151676);  // ids 0..151675: vocabulary and added tokens
    CHECK(second.encode("Hello world.") == std::vector<int32_t>{9707, 1879, 13});
}

TEST_CASE("a damaged cache file is rebuilt, and a changed vocabulary gets a new one", "[text][cache]") {
    CacheHome cache;
    Scratch copy;
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
        fs::copy_file(shared() / "reference" / "text-tokenizer" / f, copy.path / f);
    const Tokenizer reference = Tokenizer::from_folder(copy.path.string());
    auto files = cache.files();
    REQUIRE(files.size() == 1);

    // Truncated, then garbage of the right length: both are parsed again and give the same tokenizer.
    const auto size = fs::file_size(files[0]);
    fs::resize_file(files[0], size / 2);
    same_tokenizer(reference, Tokenizer::from_folder(copy.path.string()));
    CHECK(fs::file_size(files[0]) == size);
    {
        std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(64);
        std::string junk(4096, '\xff');
        f.write(junk.data(), std::streamsize(junk.size()));
    }
    same_tokenizer(reference, Tokenizer::from_folder(copy.path.string()));

    // Touching vocab.json (a new modification time) keys a new cache file.
    fs::last_write_time(copy.path / "vocab.json", fs::last_write_time(copy.path / "vocab.json") + std::chrono::seconds(5));
    same_tokenizer(reference, Tokenizer::from_folder(copy.path.string()));
    CHECK(cache.files().size() == 2);
}
