// Writes facet weight files in memory, independently of the Python converter, so that tests can
// build valid files and then break them one field at a time (weights/FORMAT.md).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <facet/io/weights.hpp>

namespace facet::test {

// A float32 tensor from `values`, or, when `raw` is not empty, a tensor of `dtype` whose bytes
// are `raw` (int8 and bfloat16 tensors).
struct TensorSpec {
    TensorSpec(std::string name_, std::vector<std::uint32_t> shape_, std::vector<float> values_)
        : name(std::move(name_)), shape(std::move(shape_)), values(std::move(values_)) {}
    TensorSpec(std::string name_, std::vector<std::uint32_t> shape_, DType dtype_, std::vector<std::uint8_t> raw_)
        : name(std::move(name_)), shape(std::move(shape_)), dtype(dtype_), raw(std::move(raw_)) {}

    std::string name;
    std::vector<std::uint32_t> shape;
    std::vector<float> values;
    DType dtype = DType::float32;
    std::vector<std::uint8_t> raw;

    const std::uint8_t* bytes() const { return raw.empty() ? reinterpret_cast<const std::uint8_t*>(values.data()) : raw.data(); }
    std::size_t byte_count() const { return raw.empty() ? values.size() * 4 : raw.size(); }
};

// Written as version 2 when a tensor needs it (int8, bfloat16), else as version 1, as the
// converters do.

template <class T>
void put(std::vector<std::uint8_t>& out, std::size_t at, T v) {
    std::memcpy(out.data() + at, &v, sizeof v);
}

template <class T>
void append(std::vector<std::uint8_t>& out, T v) {
    out.resize(out.size() + sizeof v);
    put(out, out.size() - sizeof v, v);
}

inline void refresh_crc(std::vector<std::uint8_t>& file) {
    put<std::uint32_t>(file, 52, crc32(file.data() + 64, file.size() - 64));
}

inline std::vector<std::uint8_t> write_facet(const std::string& metadata, const std::vector<TensorSpec>& tensors) {
    std::vector<std::uint8_t> out(64, 0);
    out.insert(out.end(), metadata.begin(), metadata.end());
    while (out.size() % 8) out.push_back(0);
    const std::size_t table = out.size();
    // Table first with placeholder offsets, then the data, then the offsets patched in.
    std::vector<std::size_t> offset_fields;
    for (const TensorSpec& t : tensors) {
        append<std::uint16_t>(out, static_cast<std::uint16_t>(t.name.size()));
        out.insert(out.end(), t.name.begin(), t.name.end());
        append<std::uint8_t>(out, static_cast<std::uint8_t>(t.dtype));
        append<std::uint8_t>(out, static_cast<std::uint8_t>(t.shape.size()));
        for (auto d : t.shape) append<std::uint32_t>(out, d);
        offset_fields.push_back(out.size());
        append<std::uint64_t>(out, 0);
        append<std::uint64_t>(out, t.byte_count());
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        while (out.size() % 64) out.push_back(0);
        put<std::uint64_t>(out, offset_fields[i], out.size());
        out.insert(out.end(), tensors[i].bytes(), tensors[i].bytes() + tensors[i].byte_count());
    }
    bool needs_version_2 = false;
    for (const TensorSpec& t : tensors) needs_version_2 |= t.dtype == DType::int8 || t.dtype == DType::bfloat16;
    std::memcpy(out.data(), "FACETWGT", 8);
    put<std::uint32_t>(out, 8, needs_version_2 ? 2 : 1);
    put<std::uint32_t>(out, 12, 64);
    put<std::uint64_t>(out, 16, out.size());
    put<std::uint64_t>(out, 24, 64);
    put<std::uint64_t>(out, 32, metadata.size());
    put<std::uint64_t>(out, 40, table);
    put<std::uint32_t>(out, 48, static_cast<std::uint32_t>(tensors.size()));
    refresh_crc(out);
    return out;
}

inline WeightFile parse(const std::vector<std::uint8_t>& bytes) { return WeightFile::from_bytes(bytes.data(), bytes.size(), "test.facet"); }

} // namespace facet::test
