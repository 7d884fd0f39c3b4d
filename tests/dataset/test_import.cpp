#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>
#include <sndfile.h>

#include "alexandria/dataset/import.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "support/test_support.h"

using namespace alexandria;
using alexandria::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Speech-like test signal: a voiced harmonic tone with syllable-rate loudness changes, short pauses and a quiet
// noise floor, so level and SNR estimates behave as on a recording.
std::vector<float> speechish(double seconds, int rate, double amp = 0.3, unsigned seed = 1) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 0.0005f);
    size_t n = size_t(seconds * rate);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        double t = double(i) / rate;
        double f0 = 120 + 20 * std::sin(2 * M_PI * 0.7 * t);
        double voiced = 0;
        for (int h = 1; h <= 5; ++h) voiced += std::sin(2 * M_PI * f0 * h * t) / h;
        double env = 0.5 + 0.5 * std::sin(2 * M_PI * 4.0 * t);
        if (std::fmod(t, 1.5) > 1.2) env = 0;  // a pause every 1.5 s
        x[i] = float(amp * env * voiced / 2.3) + noise(rng);
    }
    return x;
}

void write_wav(const fs::path& p, const std::vector<float>& mono, int rate, int channels,
               int format = SF_FORMAT_WAV | SF_FORMAT_PCM_16) {
    SF_INFO info{};
    info.samplerate = rate;
    info.channels = channels;
    info.format = format;
    SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &info);
    REQUIRE(f != nullptr);
    std::vector<float> inter(mono.size() * size_t(channels));
    for (size_t i = 0; i < mono.size(); ++i)
        for (int c = 0; c < channels; ++c) inter[i * size_t(channels) + size_t(c)] = mono[i];
    sf_writef_float(f, inter.data(), sf_count_t(mono.size()));
    sf_close(f);
}

void write_text(const fs::path& p, const std::string& s) {
    std::ofstream o(p, std::ios::binary);
    o << s;
}

std::string slurp(const fs::path& p) { return io::read_file(p); }

std::vector<nlohmann::json> read_meta(const fs::path& dir) {
    std::vector<nlohmann::json> v;
    std::ifstream in(dir / "metadata.jsonl");
    std::string l;
    while (std::getline(in, l))
        if (!l.empty()) v.push_back(nlohmann::json::parse(l));
    return v;
}

std::map<std::string, std::string> snapshot(const fs::path& dir) {
    std::map<std::string, std::string> m;
    for (auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) m[e.path().string()] = io::hash_file(e.path());
    return m;
}

// Every clip of the output is 24 kHz mono PCM16 and its length matches the source within a sample or two.
void require_24k_mono(const fs::path& f, double seconds) {
    auto info = io::probe_audio(f.string());
    REQUIRE(info.sample_rate == 24000);
    REQUIRE(info.channels == 1);
    REQUIRE(info.format == "wav Signed 16 bit PCM");
    REQUIRE(std::fabs(double(info.frames) - seconds * 24000) <= 2.0);
}

}  // namespace

TEST_CASE("import: a folder of audio and same-named .txt at 16, 44.1 and 48 kHz, mono and stereo") {
    TempDir t;
    fs::path src = t / "recordings";
    fs::create_directories(src);
    struct Clip { const char* name; int rate; int channels; double seconds; const char* text; };
    std::vector<Clip> clips = {{"a_16k_mono", 16000, 1, 2.0, "Oh!"},
                               {"b_44k_stereo", 44100, 2, 7.0, "The morning light fell across the quiet harbour."},
                               {"c_48k_stereo", 48000, 2, 3.0, "Hmm."},
                               {"d_48k_mono", 48000, 1, 1.5, "Right."}};
    for (auto& c : clips) {
        write_wav(src / (std::string(c.name) + ".wav"), speechish(c.seconds, c.rate), c.rate, c.channels);
        write_text(src / (std::string(c.name) + ".txt"), std::string(c.text) + "\n");
    }
    auto before = snapshot(src);

    dataset::ImportOptions o;
    o.source = src;
    o.out = t / "voice";
    auto rep = dataset::import_dataset(o);

    REQUIRE(rep.format == dataset::SourceFormat::Folder);
    REQUIRE(rep.written);
    REQUIRE(rep.skipped.empty());
    REQUIRE(rep.clips.size() == 4);
    auto meta = read_meta(o.out);
    REQUIRE(meta.size() == 4);
    for (size_t i = 0; i < 4; ++i) {
        REQUIRE(meta[i]["audio_filepath"] == fmt::format("sample_{:03d}.wav", i));
        REQUIRE(meta[i]["text"] == clips[i].text);  // trailing newline of the .txt is not part of the text
        REQUIRE(meta[i]["ref_audio"] == "ref.wav");
        require_24k_mono(o.out / meta[i]["audio_filepath"].get<std::string>(), clips[i].seconds);
        REQUIRE(rep.clips[i].source_rate == clips[i].rate);
        REQUIRE(rep.clips[i].source_channels == clips[i].channels);
    }
    // Alexandria's key order on every line
    std::ifstream in(o.out / "metadata.jsonl");
    std::string first;
    std::getline(in, first);
    REQUIRE(first == R"({"audio_filepath":"sample_000.wav","text":"Oh!","ref_audio":"ref.wav"})");

    // the only 5-15 s clip is the reference; ref.wav is a byte copy and ref_text.txt its exact transcript
    REQUIRE(rep.ref_source == "b_44k_stereo.wav");
    REQUIRE(slurp(o.out / "ref.wav") == slurp(o.out / "sample_001.wav"));
    REQUIRE(slurp(o.out / "ref_text.txt") == clips[1].text);
    REQUIRE(fs::exists(o.out / "import.json"));
    auto report = nlohmann::json::parse(slurp(o.out / "import.json"));
    REQUIRE(report["imported"] == 4);

    // the source is untouched, and no temp folder is left beside the output
    REQUIRE(snapshot(src) == before);
    for (auto& e : fs::directory_iterator(t.path))
        REQUIRE(e.path().filename().string().find(".tmp-") == std::string::npos);

    // a 2 s clip at 16 kHz keeps its waveform through resampling (correlation with a direct 24 kHz render)
    auto got = io::read_audio((o.out / "sample_000.wav").string());
    auto direct = io::resample(io::read_audio((src / "a_16k_mono.wav").string()).samples, 16000, 24000);
    REQUIRE(got.samples.size() == direct.size());
    double maxdiff = 0;
    for (size_t i = 0; i < direct.size(); ++i) maxdiff = std::max(maxdiff, double(std::fabs(direct[i] - got.samples[i])));
    REQUIRE(maxdiff < 1.0 / 16000);
}

TEST_CASE("import: LJSpeech metadata.csv with ids, paths, normalized column and a header") {
    TempDir t;
    fs::path src = t / "LJSpeech";
    fs::create_directories(src / "wavs");
    write_wav(src / "wavs" / "LJ001-0001.wav", speechish(6.0, 22050), 22050, 1);
    write_wav(src / "wavs" / "LJ001-0002.wav", speechish(2.0, 44100), 44100, 2);
    write_wav(src / "LJ001-0003.flac", speechish(1.0, 48000), 48000, 1, SF_FORMAT_FLAC | SF_FORMAT_PCM_16);
    write_text(src / "metadata.csv",
               "LJ001-0001|In 1884 the press was new.|In eighteen eighty-four the press was new.\r\n"
               "wavs/LJ001-0002.wav|Printing, in the only sense.|Printing, in the only sense.\r\n"
               "\r\n"
               "LJ001-0003|For although the Chinese took impressions.\r\n");

    dataset::ImportOptions o;
    o.source = src;
    o.out = t / "out";
    auto rep = dataset::import_dataset(o);
    REQUIRE(rep.format == dataset::SourceFormat::LJSpeech);
    REQUIRE(rep.skipped.empty());
    REQUIRE(rep.clips.size() == 3);
    auto meta = read_meta(o.out);
    REQUIRE(meta[0]["text"] == "In 1884 the press was new.");
    REQUIRE(meta[2]["text"] == "For although the Chinese took impressions.");
    require_24k_mono(o.out / "sample_000.wav", 6.0);
    require_24k_mono(o.out / "sample_001.wav", 2.0);
    require_24k_mono(o.out / "sample_002.wav", 1.0);
    REQUIRE(rep.clips[0].source_line == 1);
    REQUIRE(rep.clips[2].source_line == 4);

    SECTION("the normalized column on request, the csv file itself as SRC") {
        o.source = src / "metadata.csv";
        o.out = t / "out2";
        o.use_normalized = true;
        auto r2 = dataset::import_dataset(o);
        auto m2 = read_meta(o.out);
        REQUIRE(m2[0]["text"] == "In eighteen eighty-four the press was new.");
        REQUIRE(m2[2]["text"] == "For although the Chinese took impressions.");  // no third column: the text
        REQUIRE(r2.warnings.size() == 1);
    }
    SECTION("a header line is recognised and skipped") {
        fs::path src2 = t / "withheader";
        fs::create_directories(src2 / "wavs");
        fs::copy_file(src / "wavs" / "LJ001-0001.wav", src2 / "wavs" / "LJ001-0001.wav");
        write_text(src2 / "metadata.csv", "file|text\nLJ001-0001|Hello there.\n");
        o.source = src2;
        o.out = t / "out3";
        auto r3 = dataset::import_dataset(o);
        REQUIRE(r3.entries == 1);
        REQUIRE(r3.clips.size() == 1);
        REQUIRE(r3.clips[0].audio_filepath == "sample_000.wav");
    }
}

TEST_CASE("import: JSONL with audio_filepath or audio, relative and absolute paths") {
    TempDir t;
    fs::path src = t / "src";
    fs::create_directories(src / "clips");
    write_wav(src / "clips" / "one.wav", speechish(8.0, 48000), 48000, 2);
    write_wav(t / "elsewhere.wav", speechish(2.5, 16000), 16000, 1);
    write_text(src / "list.jsonl",
               "{\"audio_filepath\": \"clips/one.wav\", \"text\": \"Caf\xC3\xA9 au lait, s'il vous pla\xC3\xAEt.\"}\n"
               "{\"audio\": \"" + (t / "elsewhere.wav").string() + "\", \"text\": \"Absolutely.\", \"extra\": 3}\n");
    dataset::ImportOptions o;
    o.source = src / "list.jsonl";
    o.out = t / "out";
    auto rep = dataset::import_dataset(o);
    REQUIRE(rep.format == dataset::SourceFormat::Jsonl);
    REQUIRE(rep.clips.size() == 2);
    require_24k_mono(o.out / "sample_000.wav", 8.0);
    require_24k_mono(o.out / "sample_001.wav", 2.5);
    // UTF-8 written unescaped, as Alexandria does
    std::string meta = slurp(o.out / "metadata.jsonl");
    REQUIRE(meta.find("Caf\xC3\xA9") != std::string::npos);
    REQUIRE(slurp(o.out / "ref_text.txt") == "Caf\xC3\xA9 au lait, s'il vous pla\xC3\xAEt.");
}

TEST_CASE("import: bad entries are skipped with clear reasons and the rest is written") {
    TempDir t;
    fs::path src = t / "src";
    fs::create_directories(src);
    write_wav(src / "a.wav", speechish(6.0, 16000), 16000, 1);
    write_text(src / "a.txt", "A good clip with a transcript.");
    write_wav(src / "b.wav", speechish(2.0, 16000), 16000, 1);  // no b.txt
    write_wav(src / "c.wav", speechish(2.0, 16000), 16000, 1);
    write_text(src / "c.txt", "  \n\t ");  // empty
    write_text(src / "d.wav", "this is not audio at all");
    write_text(src / "d.txt", "Unreadable.");
    write_wav(src / "e.wav", speechish(1.0, 16000), 16000, 1);  // e.wav and e.flac share e.txt
    write_wav(src / "e.flac", speechish(1.0, 16000), 16000, 1, SF_FORMAT_FLAC | SF_FORMAT_PCM_16);
    write_text(src / "e.txt", "Ambiguous.");
    write_wav(src / "f.wav", speechish(31.0, 16000), 16000, 1);  // over --max-seconds
    write_text(src / "f.txt", "Far too long.");
    write_text(src / "g.txt", "A transcript with no audio.");
    write_wav(src / "h.wav", std::vector<float>(16000, 0.0f), 16000, 1);  // digital silence
    write_text(src / "h.txt", "Silence.");
    write_wav(src / "i.wav", speechish(3.0, 16000), 16000, 1);
    write_text(src / "i.txt", "Another good one.");
    write_text(src / "notes.md", "ignored: not audio, not a transcript");

    dataset::ImportOptions o;
    o.source = src;
    o.out = t / "out";
    auto rep = dataset::import_dataset(o);
    REQUIRE(rep.written);
    REQUIRE(rep.clips.size() == 2);
    std::map<std::string, std::string> why;
    for (auto& s : rep.skipped) why[s.source] = s.reason;
    REQUIRE(why.size() == 8);
    CHECK_THAT(why["b.wav"], Catch::Contains("missing transcript b.txt"));
    CHECK_THAT(why["c.wav"], Catch::Contains("empty transcript"));
    CHECK_THAT(why["d.wav"], Catch::Contains("cannot decode"));
    CHECK_THAT(why["e.flac"], Catch::Contains("duplicate name"));
    CHECK_THAT(why["e.wav"], Catch::Contains("duplicate name"));
    CHECK_THAT(why["f.wav"], Catch::Contains("--max-seconds"));
    CHECK_THAT(why["g.txt"], Catch::Contains("without an audio file"));
    CHECK_THAT(why["h.wav"], Catch::Contains("silent"));
    // names follow the source position, so the kept clips keep their names when the others are fixed later
    auto meta = read_meta(o.out);
    REQUIRE(meta.size() == 2);
    REQUIRE(meta[0]["audio_filepath"] == "sample_000.wav");
    REQUIRE(meta[1]["text"] == "Another good one.");
    REQUIRE(meta[1]["audio_filepath"].get<std::string>() != "sample_001.wav");
    REQUIRE(fs::exists(o.out / meta[1]["audio_filepath"].get<std::string>()));
    auto report = nlohmann::json::parse(slurp(o.out / "import.json"));
    REQUIRE(report["skipped"].size() == 8);
    // f.wav was left out by length: a shorter limit also drops a.wav (6 s)
    o.out = t / "out-short";
    o.max_seconds = 5;
    auto r2 = dataset::import_dataset(o);
    REQUIRE(r2.clips.size() == 1);
}

TEST_CASE("import: bad JSONL and csv lines name the line and field") {
    TempDir t;
    write_wav(t / "ok.wav", speechish(2.0, 24000), 24000, 1);
    write_text(t / "list.jsonl",
               "{\"audio_filepath\": \"ok.wav\", \"text\": \"Fine.\"}\n"
               "not json\n"
               "{\"text\": \"no audio\"}\n"
               "{\"audio_filepath\": \"ok.wav\", \"text\": 5}\n"
               "{\"audio_filepath\": \"missing.wav\", \"text\": \"Gone.\"}\n"
               "{\"audio_filepath\": \"ok.wav\", \"text\": \"Listed again.\"}\n");
    dataset::ImportOptions o;
    o.source = t / "list.jsonl";
    o.out = t / "out";
    auto rep = dataset::import_dataset(o);
    REQUIRE(rep.clips.size() == 1);
    REQUIRE(rep.skipped.size() == 5);
    CHECK_THAT(rep.skipped[0].reason, Catch::Contains("invalid JSON"));
    CHECK_THAT(rep.skipped[1].reason, Catch::Contains("missing field 'audio_filepath'"));
    CHECK_THAT(rep.skipped[2].reason, Catch::Contains("field 'text': expected a string"));
    CHECK_THAT(rep.skipped[3].reason, Catch::Contains("not found"));
    CHECK_THAT(rep.skipped[4].reason, Catch::Contains("duplicate"));
    CHECK_THAT(rep.skipped[4].source, Catch::Contains("list.jsonl:6"));

    write_text(t / "metadata.csv", "ok.wav|Fine.\nonly-one-column\nok.wav|a|b|c\n|No file.\n");
    o.source = t / "metadata.csv";
    o.out = t / "out2";
    auto r2 = dataset::import_dataset(o);
    REQUIRE(r2.clips.size() == 1);
    REQUIRE(r2.skipped.size() == 3);
    CHECK_THAT(r2.skipped[0].reason, Catch::Contains("found 1 column"));
    CHECK_THAT(r2.skipped[0].source, Catch::Contains("metadata.csv:2"));
    CHECK_THAT(r2.skipped[1].reason, Catch::Contains("found 4 columns"));
    CHECK_THAT(r2.skipped[2].reason, Catch::Contains("empty file column"));
}

TEST_CASE("import: nothing usable writes nothing and reports why") {
    TempDir t;
    fs::path src = t / "src";
    fs::create_directories(src);
    write_wav(src / "a.wav", speechish(2.0, 16000), 16000, 1);
    write_text(src / "b.wav", "junk");
    write_text(src / "b.txt", "Junk.");
    dataset::ImportOptions o;
    o.source = src;
    o.out = t / "out";
    try {
        dataset::import_dataset(o);
        FAIL("expected ImportFailed");
    } catch (const dataset::ImportFailed& e) {
        CHECK_THAT(std::string(e.what()), Catch::Contains("no usable clip"));
        REQUIRE(e.report().skipped.size() == 2);
        REQUIRE_FALSE(e.report().written);
        REQUIRE(e.exit_code() == 2);
    }
    REQUIRE_FALSE(fs::exists(o.out));
    for (auto& e : fs::directory_iterator(t.path))
        REQUIRE(e.path().filename().string().find(".tmp-") == std::string::npos);
}

TEST_CASE("import: the output folder is protected") {
    TempDir t;
    fs::path src = t / "src";
    fs::create_directories(src);
    write_wav(src / "a.wav", speechish(2.0, 16000), 16000, 1);
    write_text(src / "a.txt", "Hello.");
    dataset::ImportOptions o;
    o.source = src;

    o.out = src / "dataset";
    REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("inside the source folder"));
    o.out = src;
    REQUIRE_THROWS_AS(dataset::import_dataset(o), InputError);
    o.out = t.path;  // SRC inside --out: --force would delete it
    o.force = true;
    REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("inside --out"));
    o.force = false;

    o.out = t / "busy";
    fs::create_directories(o.out);
    write_text(o.out / "keep.txt", "mine");
    REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("--force"));
    REQUIRE(slurp(o.out / "keep.txt") == "mine");
    o.force = true;
    dataset::import_dataset(o);
    REQUIRE_FALSE(fs::exists(o.out / "keep.txt"));
    REQUIRE(fs::exists(o.out / "metadata.jsonl"));

    o.out = t / "empty";  // an existing empty folder is fine without --force
    o.force = false;
    fs::create_directories(o.out);
    dataset::import_dataset(o);
    REQUIRE(fs::exists(o.out / "ref.wav"));

    o.out = (t / "slash").string() + "/";  // a trailing separator still names the folder
    dataset::import_dataset(o);
    REQUIRE(fs::exists(t / "slash" / "metadata.jsonl"));
    for (auto& e : fs::directory_iterator(t / "slash")) REQUIRE(e.path().filename().string().find(".tmp-") == std::string::npos);

    o.out = t / "x";
    o.source = t / "nope";
    REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("source not found"));
    o.source = src;
    o.max_seconds = 0;
    REQUIRE_THROWS_AS(dataset::import_dataset(o), InputError);
    o.max_seconds = 30;
    write_text(t / "weird.bin", "x");
    o.source = t / "weird.bin";
    REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("--format"));
}

TEST_CASE("import: the automatic reference is a calm 5-15 s unclipped clip, --ref overrides it") {
    TempDir t;
    fs::path src = t / "src";
    fs::create_directories(src);
    auto clip = [&](const std::string& name, std::vector<float> x, const std::string& text) {
        write_wav(src / (name + ".wav"), x, 24000, 1);
        write_text(src / (name + ".txt"), text);
    };
    clip("01_short", speechish(3.0, 24000), "A short calm line.");
    clip("02_long", speechish(20.0, 24000), "A very long calm reading that goes on and on for twenty seconds of audio.");
    auto clipped = speechish(11.0, 24000, 3.0);
    for (auto& v : clipped) v = std::clamp(v, -1.0f, 1.0f);
    clip("03_clipped", clipped, "A clipped line that is otherwise a perfectly calm and long sentence to read aloud.");
    clip("04_shout", speechish(13.0, 24000, 0.3, 7), "GET OUT OF HERE RIGHT NOW!");
    clip("05_calm", speechish(12.0, 24000, 0.3, 9),
         "The lighthouse stood at the end of the long stone pier, and every evening the keeper climbed its stairs.");
    clip("06_quiet", speechish(12.5, 24000, 0.02, 11),
         "This one is long and calm as well, but recorded far too quietly compared with all of the others here.");

    dataset::ImportOptions o;
    o.source = src;
    o.out = t / "auto";
    auto rep = dataset::import_dataset(o);
    REQUIRE(rep.clips.size() == 6);
    REQUIRE(rep.ref_source == "05_calm.wav");
    REQUIRE(slurp(o.out / "ref_text.txt") == rep.clips[4].text);
    REQUIRE(slurp(o.out / "ref.wav") == slurp(o.out / "sample_004.wav"));
    for (size_t i : {0, 1, 2}) {
        INFO("clip " << i);
        REQUIRE(rep.clips[i].ref_score < 1.0);  // not eligible
    }
    REQUIRE(rep.clips[4].ref_score > rep.clips[3].ref_score);
    REQUIRE(rep.clips[4].ref_score > rep.clips[5].ref_score);

    SECTION("--ref by stem") {
        o.out = t / "by-stem";
        o.ref = "04_shout";
        auto r = dataset::import_dataset(o);
        REQUIRE(r.ref_source == "04_shout.wav");
        REQUIRE(slurp(o.out / "ref_text.txt") == "GET OUT OF HERE RIGHT NOW!");
    }
    SECTION("--ref as a path to a source file") {
        o.out = t / "by-path";
        o.ref = (src / "01_short.wav").string();
        auto r = dataset::import_dataset(o);
        REQUIRE(r.ref_source == "01_short.wav");
        REQUIRE(slurp(o.out / "ref.wav") == slurp(o.out / "sample_000.wav"));
    }
    SECTION("--ref outside the source needs a transcript") {
        write_wav(t / "myref.wav", speechish(9.0, 44100), 44100, 2);
        o.out = t / "ext";
        o.ref = (t / "myref.wav").string();
        REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("--ref-text"));
        REQUIRE_FALSE(fs::exists(o.out));
        o.ref_text = "My own reference sentence.";
        auto r = dataset::import_dataset(o);
        REQUIRE(slurp(o.out / "ref_text.txt") == "My own reference sentence.");
        require_24k_mono(o.out / "ref.wav", 9.0);
        REQUIRE(read_meta(o.out).size() == 6);  // the external ref is not a training clip
    }
    SECTION("an unknown --ref fails before anything is written") {
        o.out = t / "bad";
        o.ref = "no_such_clip";
        REQUIRE_THROWS_WITH(dataset::import_dataset(o), Catch::Contains("no source clip has that name"));
        REQUIRE_FALSE(fs::exists(o.out));
    }
}

TEST_CASE("import: reference score terms") {
    dataset::RefCandidate c{10.0, 0.5, 0.0, -20.0, 30.0, false, "A calm and even sentence of moderate length here."};
    REQUIRE(dataset::ref_eligible(c));
    double base = dataset::ref_score(c, -20.0);
    REQUIRE(base > 1.0);
    auto longer = c;
    longer.seconds = 14;
    REQUIRE(dataset::ref_score(longer, -20.0) > base);
    auto off_level = c;
    REQUIRE(dataset::ref_score(off_level, -32.0) < base);
    auto excited = c;
    excited.text = "A calm and even sentence of moderate length here!";
    REQUIRE(dataset::ref_score(excited, -20.0) < base);
    auto clipped = c;
    clipped.peak = 1.0;
    REQUIRE_FALSE(dataset::ref_eligible(clipped));
    auto too_long = c;
    too_long.seconds = 16;
    REQUIRE_FALSE(dataset::ref_eligible(too_long));
    REQUIRE(dataset::ref_score(too_long, -20.0) < 1.0);
}

TEST_CASE("import: LJSpeech rows parse on their own (header, columns, normalized, bad text)") {
    auto row = dataset::parse_ljspeech_row("LJ001-0001|Printing, in the only sense.|Printing normalized\r", 2, false);
    CHECK_FALSE(row.skip);
    CHECK(row.columns == 3);
    CHECK(row.file == "LJ001-0001");
    CHECK(row.text == "Printing, in the only sense.");
    CHECK(row.error.empty());
    CHECK(dataset::parse_ljspeech_row("LJ001-0001|a|Normalized  text ", 2, true).text == "Normalized text");
    auto two = dataset::parse_ljspeech_row("a.wav|only text", 3, true);
    CHECK(two.no_normalized);
    CHECK(two.text == "only text");
    CHECK(dataset::parse_ljspeech_row("\xEF\xBB\xBF" "file|text", 1, false).skip);   // header, after a BOM
    CHECK_FALSE(dataset::parse_ljspeech_row("file|text", 2, false).skip);           // only line 1 is a header
    CHECK(dataset::parse_ljspeech_row("  \t", 4, false).skip);
    CHECK(dataset::parse_ljspeech_row("one column", 5, false).error == "expected 'file|text' or 'file|text|normalized', found 1 column");
    CHECK(dataset::parse_ljspeech_row("a|b|c|d", 5, false).columns == 4);
    CHECK(dataset::parse_ljspeech_row("|text", 6, false).error == "empty file column");
    CHECK(dataset::parse_ljspeech_row("a|   ", 6, false).error == "empty transcript");
    CHECK_THAT(dataset::parse_ljspeech_row("a|caf\xE9", 7, false).error, Catch::Contains("not valid UTF-8"));
}
