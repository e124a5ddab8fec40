// Writes facet weight files in memory, independently of the Python converter, so that tests can
// build valid files and then break them one field at a time (weights/FORMAT.md).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <facet/io/weights.hpp>

namespace facet::test {

struct TensorSpec {
    std::string name;
    std::vector<std::uint32_t> shape;
    std::vector<float> values;
};

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
        append<std::uint8_t>(out, 1);
        append<std::uint8_t>(out, static_cast<std::uint8_t>(t.shape.size()));
        for (auto d : t.shape) append<std::uint32_t>(out, d);
        offset_fields.push_back(out.size());
        append<std::uint64_t>(out, 0);
        append<std::uint64_t>(out, t.values.size() * 4);
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        while (out.size() % 64) out.push_back(0);
        put<std::uint64_t>(out, offset_fields[i], out.size());
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(tensors[i].values.data());
        out.insert(out.end(), bytes, bytes + tensors[i].values.size() * 4);
    }
    std::memcpy(out.data(), "FACETWGT", 8);
    put<std::uint32_t>(out, 8, 1);
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
