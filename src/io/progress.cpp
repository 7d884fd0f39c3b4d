#include "alexandria/io/progress.h"

#include <cstdio>

#include "alexandria/io/files.h"

namespace alexandria::io {

std::string format_duration(double s) {
    if (!(s >= 0) || s > 1e8) return "?";
    if (s < 60) return fmt::format("{:.1f}s", s);
    int64_t t = int64_t(s + 0.5);
    if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
    return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled), tty_(is_terminal(2)) {
    start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
    if (!finished_ && tty_ && enabled_ && done_ > 0) std::fputc('\n', stderr);
}

double Progress::rate() const {
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return el > 0 ? double(done_) / el : 0.0;
}

void Progress::update(int64_t done, const std::string& status) {
    done_ = done;
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    double since = std::chrono::duration<double>(now - last_draw_).count();
    bool last = total_ > 0 && done >= total_;
    // a terminal redraws up to 10×/s; a log gets a line every 10 s (and the last one)
    if (!last && since < (tty_ ? 0.1 : 10.0)) return;
    last_draw_ = now;
    double r = rate();
    std::string eta = (total_ > 0 && r > 0) ? format_duration(double(total_ - done) / r) : "?";
    std::string line;
    if (tty_) {
        int width = 24;
        int filled = total_ > 0 ? int(double(width) * double(done) / double(total_)) : 0;
        line = fmt::format("\r{} [{}{}] {}/{} {} {:.2f} {}/s ETA {} {}", label_, std::string(size_t(filled), '#'),
                           std::string(size_t(width - filled), '.'), done, total_, unit_, r, unit_, eta, status);
        line += "\x1b[K";
    } else {
        line = fmt::format("{}: {}/{} {}, {:.2f} {}/s, ETA {} {}\n", label_, done, total_, unit_, r, unit_, eta, status);
    }
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
}

void Progress::finish(const std::string& status) {
    if (finished_) return;
    finished_ = true;
    if (!enabled_) return;
    double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::string line = fmt::format("{}: {} {} in {} ({:.2f} {}/s) {}\n", label_, done_, unit_, format_duration(el), rate(),
                                   unit_, status);
    if (tty_) line = "\r\x1b[K" + line;
    std::fputs(line.c_str(), stderr);
}

}  // namespace alexandria::io
