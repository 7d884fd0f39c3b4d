#pragma once
// Human progress on stderr: a one-line bar with rate and ETA on a terminal, plain periodic lines otherwise.
#include <chrono>
#include <string>

namespace alexandria::io {

class Progress {
public:
    // total: number of units (0 = unknown); unit: e.g. "samples", "lines".
    Progress(std::string label, int64_t total, std::string unit, bool enabled = true);
    ~Progress();
    // Advance to `done` units; `status` is a short suffix such as "loss 4.21".
    void update(int64_t done, const std::string& status = "");
    // Ends the bar line (on a terminal) so later output starts on a fresh line.
    void finish(const std::string& status = "");
    double rate() const;  // units per second so far

private:
    std::string label_, unit_;
    int64_t total_, done_ = 0;
    bool enabled_, tty_, finished_ = false;
    std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"

}  // namespace alexandria::io
