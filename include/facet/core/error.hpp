// facet: the one exception type the library throws for anything a user can cause.
#pragma once
#include <stdexcept>
#include <string>

namespace facet {

// Thrown for bad input: a missing or corrupt weight file, a wrong model kind, an unreadable or
// oversized image, a bad option. The message names the thing and the reason, so a CLI can print
// it as is. Programming errors (broken invariants) are asserts, not Errors.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};

} // namespace facet
