// facet: reading a whole input file into memory, bounded, and writing an output file whole, with
// messages that say what went wrong.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "../core/error.hpp"

namespace facet {

// The bytes of the file at `path`, at most `max_bytes` of them; `what` names the kind of file in
// messages ("image", "weight file"). A regular file's size is checked before anything is read; a
// stream (a pipe, /dev/stdin, a device such as /dev/zero) is read up to the limit and refused one
// byte past it, its buffer never grown beyond the limit. A directory is refused as one.
inline std::vector<std::uint8_t> read_file(const std::string& path, std::uint64_t max_bytes, const std::string& what) {
    const std::string a_what = (what.find_first_of("aeiou") == 0 ? "an " : "a ") + what; // "an image", "a weight file"
    const auto too_large = [&] {
        const bool whole_gib = max_bytes % (std::uint64_t(1) << 30) == 0;
        return Error(path + ": file larger than " + (whole_gib ? std::to_string(max_bytes >> 30) + " GiB" : std::to_string(max_bytes) + " bytes") +
                     ", facet's limit for " + a_what);
    };
    const auto failed = [&](const char* doing, int error) {
        return Error(path + ": cannot " + doing + " " + what + " (" + std::strerror(error) + ")");
    };
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw failed("open", errno);
    struct FileCloser {
        FILE* f;
        ~FileCloser() { std::fclose(f); }
    } closer{f};
    struct stat st {};
    if (fstat(fileno(f), &st) != 0) throw failed("read", errno);
    if (S_ISDIR(st.st_mode)) throw Error(path + ": is a directory, not " + a_what);
    std::vector<std::uint8_t> bytes;
    if (S_ISREG(st.st_mode)) {
        if (static_cast<std::uint64_t>(st.st_size) > max_bytes) throw too_large();
        bytes.reserve(static_cast<std::size_t>(st.st_size) + 1); // + 1: to see a file that grew meanwhile
    }
    std::uint8_t chunk[1 << 16];
    for (;;) {
        const std::size_t n = std::fread(chunk, 1, sizeof chunk, f);
        if (n == 0) break;
        if (bytes.size() + n > max_bytes) throw too_large();
        if (bytes.size() + n > bytes.capacity())
            bytes.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, 2 * (bytes.size() + n))));
        bytes.insert(bytes.end(), chunk, chunk + n);
    }
    if (std::ferror(f)) throw failed("read", errno ? errno : EIO);
    return bytes;
}

// Writes `size` bytes to the file at `path` (created or replaced); `what` names the kind of file
// in messages ("PNG", "JSON"). Every step is checked, the close too: on a full disk, fwrite
// usually succeeds into the stream's buffer and only the flush at fclose fails.
inline void write_file(const std::string& path, const void* data, std::size_t size, const std::string& what) {
    const auto failed = [&](int error) { return Error(path + ": cannot write " + what + " (" + std::strerror(error) + ")"); };
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw failed(errno);
    const bool written = std::fwrite(data, 1, size, f) == size;
    const int write_error = errno;
    if (std::fclose(f) != 0) throw failed(errno);
    if (!written) throw failed(write_error ? write_error : EIO);
}

inline void write_file(const std::string& path, const std::string& text, const std::string& what) {
    write_file(path, text.data(), text.size(), what);
}

} // namespace facet
