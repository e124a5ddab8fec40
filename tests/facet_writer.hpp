// Writes facet weight files in memory, independently of the Python converter, so that tests can
// build valid files and then break them one field at a time (weights/FORMAT.md).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <facet/io/weights.hpp>
#include <facet/io/weights_writer.hpp>

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

template <class T>
void put(std::vector<std::uint8_t>& out, std::size_t at, T v) {
    std::memcpy(out.data() + at, &v, sizeof v);
}

inline void refresh_crc(std::vector<std::uint8_t>& file) {
    put<std::uint32_t>(file, 52, crc32(file.data() + 64, file.size() - 64));
}

// Written by the library's writer (io/weights_writer.hpp), as version 2 when a tensor needs it
// (int8, bfloat16), else as version 1, as the converters do.
inline std::vector<std::uint8_t> write_facet(const std::string& metadata, const std::vector<TensorSpec>& tensors) {
    std::vector<TensorRecord> records;
    for (const TensorSpec& t : tensors) records.push_back(TensorRecord::of(t.name, t.dtype, t.shape, t.bytes(), t.byte_count()));
    return write_weight_bytes(metadata, records, format_version_for(records));
}

inline WeightFile parse(const std::vector<std::uint8_t>& bytes) { return WeightFile::from_bytes(bytes.data(), bytes.size(), "test.facet"); }

} // namespace facet::test
