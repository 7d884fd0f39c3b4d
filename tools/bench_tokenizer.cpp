// Tokenizer throughput: load time of a tokenizer folder and encode speed on ~1 MB of English prose
// (or on a file given with --text), on one thread. Prints figures; asserts nothing.
//
//   bench_tokenizer --model ../shared/reference/text-tokenizer [--text book.txt] [--mb 1] [--repeat 3]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ctime>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/model_location.h"
#include "alexandria/text/tokenizer.h"

namespace {

// Wall time and this thread's CPU time: on a shared, throttled machine the CPU time is the honest figure for
// "one core".
struct Clock {
    std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
    double cpu = cpu_now();
    static double cpu_now() {
        timespec ts{};
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
    }
    double wall_s() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(); }
    double cpu_s() const { return cpu_now() - cpu; }
};

// Deterministic prose: sentences assembled from a word list with punctuation, numbers and paragraphs, so the
// piece cache sees a realistic mix of repeated and new words rather than one paragraph over and over.
std::string make_prose(size_t bytes) {
    static const char* words[] = {
        "the", "of", "and", "to", "a", "in", "that", "was", "he", "she", "it", "with", "his", "her", "as", "for",
        "had", "you", "not", "be", "on", "at", "by", "which", "from", "they", "this", "were", "all", "we", "would",
        "there", "been", "one", "so", "when", "who", "said", "an", "what", "could", "their", "if", "no", "into",
        "more", "time", "then", "them", "some", "about", "only", "little", "over", "old", "man", "upon", "like",
        "before", "very", "great", "down", "never", "door", "night", "morning", "window", "harbour", "captain",
        "letter", "garden", "silence", "remembered", "whispered", "suddenly", "afterwards", "extraordinary",
        "Elizabeth", "Holmes", "London", "Thursday", "don't", "couldn't", "I'm", "she'd", "we'll", "it's",
        "they've", "you're", "nineteenth-century", "well-known", "half-past", "mother's", "Watson's"};
    const size_t nwords = sizeof(words) / sizeof(words[0]);
    std::string out;
    out.reserve(bytes + 256);
    uint64_t state = 88172645463325252ull;
    const auto next = [&]() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    int sentence = 0;
    while (out.size() < bytes) {
        const int len = 6 + int(next() % 18);
        for (int i = 0; i < len; ++i) {
            std::string w = words[next() % nwords];
            if (i == 0) w[0] = char(std::toupper(static_cast<unsigned char>(w[0])));
            if (i) out += (next() % 11 == 0) ? ", " : " ";
            if (next() % 97 == 0) w = std::to_string(next() % 2000);
            if (next() % 61 == 0) w = "\u201C" + w + "\u201D";
            out += w;
        }
        const char* ends[] = {".", ".", ".", "?", "!", "\u2026", "."};
        out += ends[next() % 7];
        out += (++sentence % 6 == 0) ? "\n\n" : " ";
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Measure text tokenizer load time and encode throughput (one thread)"};
    std::string model = "../shared/reference/text-tokenizer", text_file;
    double mb = 1.0;
    int repeat = 3;
    app.add_option("--model", model, "Tokenizer or model folder (or HF id in the local cache)")->capture_default_str();
    app.add_option("--text", text_file, "UTF-8 text file to encode instead of generated prose");
    app.add_option("--mb", mb, "Size of the generated prose in MB")->capture_default_str();
    app.add_option("--repeat", repeat, "Timed encodes (the first, with a cold piece cache, is reported apart)")
        ->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        const Clock t0;
        namespace fs = std::filesystem;
        const bool tokenizer_only = fs::is_directory(model) && !fs::exists(fs::path(model) / "config.json");
        const auto tok = alexandria::text::Tokenizer::from_folder(tokenizer_only ? model : alexandria::io::locate_model(model));
        const double load_wall = t0.wall_s(), load_cpu = t0.cpu_s();
        const std::string text = text_file.empty() ? make_prose(size_t(mb * 1e6))
                                                   : alexandria::io::read_file(text_file);
        std::printf("load         %.1f ms wall, %.1f ms CPU (%d ids, %zu merges, %zu added tokens)\n", load_wall * 1e3,
                    load_cpu * 1e3, tok.vocab_size(), tok.merge_count(), tok.added_tokens().size());
        std::printf("text         %.3f MB (%s)\n", double(text.size()) / 1e6,
                    text_file.empty() ? "generated English prose" : text_file.c_str());
        const double mbytes = double(text.size()) / 1e6;
        double best_wall = 1e30, best_cpu = 1e30;
        size_t n_ids = 0;
        for (int r = 0; r < std::max(repeat, 1); ++r) {
            const Clock t1;
            const auto ids = tok.encode(text);
            const double w = t1.wall_s(), c = t1.cpu_s();
            n_ids = ids.size();
            std::printf("encode #%d    %.3f s wall (%.2f MB/s), %.3f s CPU (%.2f MB/s)%s\n", r + 1, w, mbytes / w, c,
                        mbytes / c, r == 0 ? "  cold piece cache" : "");
            if (r > 0 || repeat <= 1) {
                best_wall = std::min(best_wall, w);
                best_cpu = std::min(best_cpu, c);
            }
        }
        std::printf("tokens       %zu (%.2f bytes/token)\n", n_ids, mbytes * 1e6 / double(n_ids));
        std::printf("throughput   %.2f MB/s wall, %.2f MB/s CPU (best warm run, one thread)\n", mbytes / best_wall,
                    mbytes / best_cpu);
        const auto ids = tok.encode(text);
        const Clock t2;
        const std::string back = tok.decode(ids);
        std::printf("decode       %.3f s CPU (%.2f MB/s)\n", t2.cpu_s(), double(back.size()) / 1e6 / t2.cpu_s());
    } catch (const alexandria::Error& e) {
        std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
