// facet: writes facet weight files (weights/FORMAT.md), the C++ twin of converters/facetfile.py:
// what facet-quantize saves, and what the tests build valid files from before breaking them.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "weights.hpp"

namespace facet {

// One tensor to write: its raw little-endian bytes, product(shape) * dtype_size(dtype) of them.
struct TensorRecord {
    std::string name;
    DType dtype = DType::float32;
    std::vector<std::uint32_t> shape;
    std::vector<std::uint8_t> bytes;

    template <class T>
    static TensorRecord of(std::string name, DType dtype, std::vector<std::uint32_t> shape, const T* values, std::size_t count) {
        TensorRecord r{std::move(name), dtype, std::move(shape), std::vector<std::uint8_t>(count * sizeof(T))};
        if (count) std::memcpy(r.bytes.data(), values, count * sizeof(T));
        return r;
    }
};

namespace detail {
template <class T>
void put_le(std::vector<std::uint8_t>& out, std::size_t at, T v) {
    std::memcpy(out.data() + at, &v, sizeof v);
}
template <class T>
void append_le(std::vector<std::uint8_t>& out, T v) {
    out.resize(out.size() + sizeof v);
    put_le(out, out.size() - sizeof v, v);
}
} // namespace detail

// The version a file of these tensors is written as: 2 when one is int8 or bfloat16, else 1, so
// that older readers keep reading float32 files (weights/FORMAT.md).
inline std::uint32_t format_version_for(const std::vector<TensorRecord>& tensors) {
    for (const TensorRecord& t : tensors)
        if (t.dtype == DType::int8 || t.dtype == DType::bfloat16) return 2;
    return 1;
}

// The bytes of a file holding `metadata` (one JSON object) and `tensors`, in that order, with the
// format's alignment, offsets and CRC; `version` is written as given (the tests write wrong ones).
inline std::vector<std::uint8_t> write_weight_bytes(const std::string& metadata, const std::vector<TensorRecord>& tensors,
                                                    std::uint32_t version) {
    using detail::append_le;
    using detail::put_le;
    std::vector<std::uint8_t> out(WeightFile::kHeaderSize, 0);
    out.insert(out.end(), metadata.begin(), metadata.end());
    while (out.size() % 8) out.push_back(0);
    const std::size_t table = out.size();
    // Table first with placeholder offsets, then the data, then the offsets patched in.
    std::vector<std::size_t> offset_fields;
    for (const TensorRecord& t : tensors) {
        append_le<std::uint16_t>(out, static_cast<std::uint16_t>(t.name.size()));
        out.insert(out.end(), t.name.begin(), t.name.end());
        append_le<std::uint8_t>(out, static_cast<std::uint8_t>(t.dtype));
        append_le<std::uint8_t>(out, static_cast<std::uint8_t>(t.shape.size()));
        for (auto d : t.shape) append_le<std::uint32_t>(out, d);
        offset_fields.push_back(out.size());
        append_le<std::uint64_t>(out, 0);
        append_le<std::uint64_t>(out, t.bytes.size());
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        while (out.size() % 64) out.push_back(0);
        put_le<std::uint64_t>(out, offset_fields[i], out.size());
        out.insert(out.end(), tensors[i].bytes.begin(), tensors[i].bytes.end());
    }
    std::memcpy(out.data(), "FACETWGT", 8);
    put_le<std::uint32_t>(out, 8, version);
    put_le<std::uint32_t>(out, 12, static_cast<std::uint32_t>(WeightFile::kHeaderSize));
    put_le<std::uint64_t>(out, 16, out.size());
    put_le<std::uint64_t>(out, 24, WeightFile::kHeaderSize);
    put_le<std::uint64_t>(out, 32, metadata.size());
    put_le<std::uint64_t>(out, 40, table);
    put_le<std::uint32_t>(out, 48, static_cast<std::uint32_t>(tensors.size()));
    put_le<std::uint32_t>(out, 52, crc32(out.data() + WeightFile::kHeaderSize, out.size() - WeightFile::kHeaderSize));
    return out;
}

inline void save_weight_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(path + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) throw Error(path + ": cannot write (disk full?)");
}

} // namespace facet
