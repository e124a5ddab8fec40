// Shared by facet's command-line tools: the argument reader, option values, usage errors, the
// default model lookup.
#pragma once
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include <facet/core/error.hpp>

namespace facet::cli {

// A mistake in the command line: reported with a pointer to --help and exit status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// "1", "0.5", "1e-3", ... as written in a range message: no trailing zeros.
inline std::string format_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

inline double parse_number(const std::string& flag, const std::string& text, double lo, double hi) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        throw UsageError(flag + " wants a number in [" + format_number(lo) + ", " + format_number(hi) + "], got '" + text + "'");
    return v;
}

inline int parse_int(const std::string& flag, const std::string& text, int lo, int hi) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
        throw UsageError(flag + " wants a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'");
    return static_cast<int>(v);
}

// Walks a tool's command line. Arguments that are no option (no leading "--") go to `positional`
// when the tool takes some (its images); without it they come back from next() like options, to be
// refused. -h and --help print `usage` and exit 0 wherever they stand.
class ArgReader {
public:
    ArgReader(int argc, char** argv, const char* usage, std::vector<std::string>* positional = nullptr)
        : argc_(argc), argv_(argv), usage_(usage), positional_(positional) {}

    // The next option into `arg`; false after the last argument.
    bool next(std::string& arg) {
        while (++i_ < argc_) {
            arg = argv_[i_];
            if (arg == "-h" || arg == "--help") {
                std::cout << usage_;
                std::exit(0);
            }
            if (!positional_ || arg.rfind("--", 0) == 0) return true;
            positional_->push_back(arg);
        }
        return false;
    }

    // The value of the option next() gave: the argument after it, whatever it looks like.
    std::string value() {
        const std::string option = argv_[i_];
        if (i_ + 1 >= argc_) throw UsageError(option.rfind("--", 0) == 0 ? option + " needs a value" : "unexpected argument " + option);
        return argv_[++i_];
    }

private:
    int argc_;
    char** argv_;
    const char* usage_;
    std::vector<std::string>* positional_;
    int i_ = 0; // argv_[i_]: the argument read last (0, the program, before the first)
};

inline bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

inline std::string executable_dir() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    const std::string path(buf, static_cast<std::size_t>(n));
    return path.substr(0, path.find_last_of('/'));
}

// $FACET_MODEL when `use_facet_model` (it names the default RetinaFace model), else `file` in
// $FACET_WEIGHTS_DIR, ../../weights or ../share/facet next to the executable (the build tree's
// bin/ and an installed prefix's bin/).
inline std::string find_default_model(const std::string& file, bool use_facet_model = true) {
    if (const char* env = std::getenv("FACET_MODEL"); use_facet_model && env && *env) return env;
    std::vector<std::string> candidates;
    if (const char* dir = std::getenv("FACET_WEIGHTS_DIR"); dir && *dir) candidates.push_back(std::string(dir) + "/" + file);
    const std::string exe = executable_dir();
    candidates.push_back(exe + "/../../weights/" + file);
    candidates.push_back(exe + "/../share/facet/" + file);
    for (const auto& c : candidates)
        if (file_exists(c)) return c;
    std::string msg = "no model given and " + file + " not found; looked in:";
    for (const auto& c : candidates) msg += "\n  " + c;
    throw Error(msg + "\n(run ./setup.sh to convert the weights, or pass --model FILE)");
}

// The main() of every facet tool: parse the arguments, run, and turn errors into a message on
// stderr and the exit status (2: usage error, 1: a bad input such as a model or an image).
template <class Parse, class Run>
int tool_main(const char* tool, int argc, char** argv, Parse&& parse, Run&& run) {
    decltype(parse(argc, argv)) args;
    try {
        args = parse(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << tool << ": " << e.what() << "\n(see " << tool << " --help)\n";
        return 2;
    }
    try {
        const int status = run(args);
        // Results on a full disk or a closed pipe must not vanish with exit status 0.
        if (!std::cout.flush()) throw Error("cannot write to standard output");
        return status;
    } catch (const Error& e) {
        std::cerr << tool << ": " << e.what() << "\n";
    } catch (const std::bad_alloc&) {
        std::cerr << tool << ": out of memory\n";
    }
    return 1;
}

} // namespace facet::cli
