// The codes cache: idempotent, content-keyed, Alexandria's SKIP lines, the reference rule.
#include <catch2/catch.hpp>

#include <regex>

#include "alexandria/codec/codec.h"
#include "alexandria/dataset/prepare.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/model/random_model.h"
#include "support/test_support.h"

using namespace alexandria;
using alexandria::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Base model weights + a tiny codec (prepare needs no tokenizer).
const fs::path& model_dir() {
    static TempDir dir;
    static bool made = [] {
        model::RandomModelSpec spec;
        spec.size = "tiny";
        spec.seed = 7;
        spec.dtype = "f32";
        model::write_random_model(dir.path.string(), spec);
        codec::write_random_codec((dir.path / "speech_tokenizer").string(), "tiny", 11);
        return true;
    }();
    (void)made;
    return dir.path;
}

fs::path copy_tiny_voice(const fs::path& into) {
    fs::path src = test::source_dir() / "examples" / "tiny-voice", dst = into / "tiny-voice";
    fs::create_directories(dst);
    for (auto& e : fs::directory_iterator(src))
        if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename());
    return dst;
}

}  // namespace

TEST_CASE("prepare fills the cache once and re-encodes only what changed", "[dataset][prepare]") {
    TempDir tmp;
    auto data = copy_tiny_voice(tmp.path);
    std::vector<std::string> lines;
    dataset::PrepareOptions o;
    o.log = [&](const std::string& l) { lines.push_back(l); };
    auto r1 = dataset::prepare(data, model_dir().string(), o);
    CHECK(r1.clips.size() == 9);
    CHECK(r1.encoded == 9);
    CHECK(r1.reused == 0);
    CHECK(r1.speaker_computed_now);
    CHECK(r1.reference.filename() == "ref.wav");
    CHECK(r1.reference_source == "ref.wav");
    CHECK(lines.front() == "[DATA] Found 9 entries in metadata.jsonl");
    CHECK(std::find(lines.begin(), lines.end(), "[DATA] Using reference audio: ref.wav") != lines.end());
    CHECK(std::find(lines.begin(), lines.end(), "[DATA] Prepared 9 samples (0 skipped)") != lines.end());
    CHECK(std::find(lines.begin(), lines.end(), "[DATA] Tokenizing 1/9: sample_000.wav") != lines.end());
    // Codes: [ceil(samples / 1920), 16] ids; the same as encoding directly.
    auto codec = codec::Codec::load((model_dir() / "speech_tokenizer").string());
    auto direct = codec.encode(io::read_audio_resampled((data / "sample_003.wav").string()).samples);
    CHECK(torch::equal(r1.load_codes(r1.clips[3]), direct));
    auto spk = r1.speaker_embedding();
    CHECK(spk.dim() == 1);
    CHECK(spk.size(0) == 64);

    // Second run: nothing to do.
    auto r2 = dataset::prepare(data, model_dir().string(), {});
    CHECK(r2.encoded == 0);
    CHECK(r2.reused == 9);
    CHECK_FALSE(r2.speaker_computed_now);
    CHECK(r2.dataset_hash == r1.dataset_hash);

    // A changed clip is re-encoded alone, and the dataset hash moves.
    io::Audio a = io::read_audio((data / "sample_002.wav").string());
    for (auto& s : a.samples) s *= 0.5f;
    io::write_audio((data / "sample_002.wav").string(), a);
    auto r3 = dataset::prepare(data, model_dir().string(), {});
    CHECK(r3.encoded == 1);
    CHECK(r3.reused == 8);
    CHECK(r3.clips[2].encoded_now);
    CHECK(r3.dataset_hash != r1.dataset_hash);

    // An added clip, too.
    fs::copy_file(data / "sample_001.wav", data / "extra.wav");
    {
        io::Audio b = io::read_audio((data / "extra.wav").string());
        b.samples[100] += 0.01f;
        io::write_audio((data / "extra.wav").string(), b);
    }
    std::string md = io::read_file(data / "metadata.jsonl");
    io::write_file_atomic(data / "metadata.jsonl", md + "{\"audio_filepath\": \"extra.wav\", \"text\": \"More.\"}\n");
    auto r4 = dataset::prepare(data, model_dir().string(), {});
    CHECK(r4.clips.size() == 10);
    CHECK(r4.encoded == 1);
}

TEST_CASE("prepare skips long and unreadable clips with Alexandria's lines", "[dataset][prepare]") {
    TempDir tmp;
    auto data = copy_tiny_voice(tmp.path);
    io::write_file_atomic(data / "sample_006.wav", "RIFF\x10\x00 broken");
    std::vector<std::string> lines;
    dataset::PrepareOptions o;
    o.max_seconds = 0.9;
    o.log = [&](const std::string& l) { lines.push_back(l); };
    auto r = dataset::prepare(data, model_dir().string(), o);
    std::regex too_long(R"(^\[DATA\] SKIP \d/9: sample_00\d\.wav \(\d+\.\ds > 0\.9s\)$)");
    int long_lines = 0;
    bool broken = false;
    for (auto& l : lines) {
        if (std::regex_match(l, too_long)) ++long_lines;
        if (l.rfind("[DATA] SKIP 7/9: sample_006.wav (", 0) == 0) broken = true;
    }
    CHECK(long_lines == 2);  // sample_003 (1.09 s) and sample_005 (0.94 s)
    CHECK(broken);
    CHECK(r.clips.size() == 6);
    CHECK(r.skipped.size() == 3);
    CHECK(std::find(lines.begin(), lines.end(), "[DATA] Prepared 6 samples (3 skipped)") != lines.end());

    o.max_seconds = 0.2;
    CHECK_THROWS_AS(dataset::prepare(data, model_dir().string(), o), InputError);
}

TEST_CASE("prepare's reference: ref_audio of the first entry, else ref.wav, else the first clip", "[dataset][prepare]") {
    TempDir tmp;
    auto data = copy_tiny_voice(tmp.path);
    fs::remove(data / "ref.wav");
    auto r = dataset::prepare(data, model_dir().string(), {});
    CHECK(r.reference.filename() == "sample_000.wav");
    std::string md = io::read_file(data / "metadata.jsonl");
    md.replace(md.find('}'), 1, ", \"ref_audio\": \"sample_003.wav\"}");
    io::write_file_atomic(data / "metadata.jsonl", md);
    auto r2 = dataset::prepare(data, model_dir().string(), {});
    CHECK(r2.reference.filename() == "sample_003.wav");
    CHECK(r2.speaker_computed_now);
    md.replace(md.find("sample_003.wav\"}"), 14, "nothing.wav");
    io::write_file_atomic(data / "metadata.jsonl", md);
    CHECK_THROWS_AS(dataset::prepare(data, model_dir().string(), {}), InputError);
}

TEST_CASE("a no-op rerun takes the usable-clip verdict from the cache and reads no audio", "[dataset][prepare]") {
    TempDir tmp;
    auto data = copy_tiny_voice(tmp.path);
    auto r1 = dataset::prepare(data, model_dir().string(), {});
    CHECK_FALSE(r1.verdict_cached);
    REQUIRE(r1.clips.size() == 9);

    // Same size, same modification time, bytes that no longer decode: only a run that reads the file can tell.
    const fs::path clip = data / "sample_005.wav", ref = data / "ref.wav";
    auto scramble = [](const fs::path& p) {
        const auto when = fs::last_write_time(p);
        std::string bytes(fs::file_size(p), '\x5a');
        io::write_file_atomic(p, bytes);
        fs::last_write_time(p, when);
    };
    const std::string clip_bytes = io::read_file(clip), ref_bytes = io::read_file(ref);
    scramble(clip);
    scramble(ref);
    auto r2 = dataset::prepare(data, model_dir().string(), {});
    CHECK(r2.verdict_cached);
    CHECK(r2.clips.size() == 9);
    CHECK(r2.encoded == 0);
    CHECK_FALSE(r2.speaker_computed_now);
    CHECK(r2.dataset_hash == r1.dataset_hash);

    // A changed stamp makes it look: the scrambled clip is now skipped (undecodable) and the verdict is new.
    io::write_file_atomic(ref, ref_bytes);
    fs::last_write_time(clip, fs::last_write_time(clip) + std::chrono::seconds(5));
    auto r3 = dataset::prepare(data, model_dir().string(), {});
    CHECK_FALSE(r3.verdict_cached);
    CHECK(r3.clips.size() == 8);
    REQUIRE(r3.skipped.size() == 1);
    CHECK(r3.skipped[0].audio == "sample_005.wav");

    // Restored: the old content hash, the old codes, a fresh verdict; another limit is another verdict.
    io::write_file_atomic(clip, clip_bytes);
    auto r4 = dataset::prepare(data, model_dir().string(), {});
    CHECK_FALSE(r4.verdict_cached);
    CHECK(r4.clips.size() == 9);
    CHECK(r4.encoded == 0);
    CHECK(r4.dataset_hash == r1.dataset_hash);
    CHECK(dataset::prepare(data, model_dir().string(), {}).verdict_cached);
    dataset::PrepareOptions shorter;
    shorter.max_seconds = 29.0;
    CHECK_FALSE(dataset::prepare(data, model_dir().string(), shorter).verdict_cached);

    // A changed transcript of the reference changes the verdict's key, too.
    io::write_file_atomic(data / "ref_text.txt", "Another transcript.");
    CHECK_FALSE(dataset::prepare(data, model_dir().string(), {}).verdict_cached);
}

TEST_CASE("prepare encodes the reference's codes once when asked", "[dataset][prepare]") {
    TempDir tmp;
    auto data = copy_tiny_voice(tmp.path);
    dataset::PrepareOptions o;
    o.reference_codes = true;
    auto r1 = dataset::prepare(data, model_dir().string(), o);
    CHECK(r1.reference_codes_now);
    auto codec = codec::Codec::load((model_dir() / "speech_tokenizer").string());
    auto direct = codec.encode(io::read_audio_resampled((data / "ref.wav").string()).samples);
    CHECK(torch::equal(r1.load_reference_codes(), direct));
    CHECK(r1.reference_frames == direct.size(0));
    auto r2 = dataset::prepare(data, model_dir().string(), o);
    CHECK_FALSE(r2.reference_codes_now);
    CHECK(r2.reference_frames == r1.reference_frames);
    CHECK(r2.dataset_hash == r1.dataset_hash);
    // Not asked: not loaded.
    auto r3 = dataset::prepare(data, model_dir().string(), {});
    CHECK(r3.reference_codes_file.empty());
    CHECK_THROWS(r3.load_reference_codes());
}
