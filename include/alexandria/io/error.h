#pragma once
// Errors carry the exit code the command line turns them into (DESIGN §5):
// InputError → 2 (bad usage or bad input, message names file/line/field), Error → 1 (the work failed).
#include <stdexcept>
#include <string>

namespace alexandria {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what, int exit_code = 1) : std::runtime_error(what), code_(exit_code) {}
    int exit_code() const { return code_; }
private:
    int code_;
};

// Bad input or usage: exit code 2.
class InputError : public Error {
public:
    explicit InputError(const std::string& what) : Error(what, 2) {}
};

}  // namespace alexandria
