// A reader for the NumPy .npy files of the golden outputs: little-endian float32, C order.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <facet/core/error.hpp>

namespace facet::test {

struct Npy {
    std::vector<int> shape;
    std::vector<float> data;
};

inline Npy load_npy(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(path + ": cannot open");
    char magic[8];
    if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw Error(path + ": not a .npy file");
    std::uint32_t header_len = 0;
    if (magic[6] == 1) {
        std::uint16_t n;
        f.read(reinterpret_cast<char*>(&n), 2);
        header_len = n;
    } else {
        f.read(reinterpret_cast<char*>(&header_len), 4);
    }
    std::string header(header_len, '\0');
    f.read(&header[0], header_len);
    if (header.find("'descr': '<f4'") == std::string::npos) throw Error(path + ": not float32");
    if (header.find("'fortran_order': False") == std::string::npos) throw Error(path + ": not C order");
    Npy npy;
    const auto open = header.find('(', header.find("'shape'")), close = header.find(')', open);
    std::size_t count = 1;
    for (std::size_t p = open + 1; p < close;) {
        const std::size_t comma = std::min(header.find(',', p), close);
        const std::string dim = header.substr(p, comma - p);
        if (dim.find_first_of("0123456789") != std::string::npos) {
            npy.shape.push_back(std::stoi(dim));
            count *= static_cast<std::size_t>(npy.shape.back());
        }
        p = comma + 1;
    }
    npy.data.resize(count);
    if (!f.read(reinterpret_cast<char*>(npy.data.data()), static_cast<std::streamsize>(count * sizeof(float))))
        throw Error(path + ": truncated");
    return npy;
}

} // namespace facet::test
