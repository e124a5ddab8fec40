// int32 tensors in test weight files. facet_writer.hpp writes float32 records only, so an int32
// tensor goes through it as the floats with the same bits and then has its record's dtype byte set
// to int32 (4): the bytes on disk are exactly those of an int32 tensor.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "facet_writer.hpp"

namespace facet::test {

inline std::vector<float> int32_bits(const std::vector<std::int32_t>& ints) {
    std::vector<float> bits(ints.size());
    if (!ints.empty()) std::memcpy(bits.data(), ints.data(), ints.size() * sizeof(float));
    return bits;
}

// Sets the dtype of the tensors named `names` in `file` (as written by write_facet) to `dtype`.
inline void set_dtype(std::vector<std::uint8_t>& file, const std::vector<std::string>& names, std::uint8_t dtype = 4) {
    std::uint64_t table;
    std::uint32_t count;
    std::memcpy(&table, file.data() + 40, 8);
    std::memcpy(&count, file.data() + 48, 4);
    std::size_t at = table;
    for (std::uint32_t i = 0; i < count; ++i) {
        std::uint16_t name_len;
        std::memcpy(&name_len, file.data() + at, 2);
        const std::string name(reinterpret_cast<const char*>(file.data() + at + 2), name_len);
        at += 2 + name_len;
        for (const std::string& n : names)
            if (n == name) file[at] = dtype;
        at += 2 + 4 * std::size_t(file[at + 1]) + 16; // dtype, ndim, dims, offset, nbytes
    }
    refresh_crc(file);
}

} // namespace facet::test
