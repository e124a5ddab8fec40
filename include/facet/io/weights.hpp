// facet: the weight-file loader (format: weights/FORMAT.md).
//
// The whole file is read into one 64-byte aligned buffer; every count, size and offset is checked
// against the file's real size before it is used, and the CRC before any tensor is handed out. A
// bad file is an Error that names the file and what is wrong with it, never an out-of-bounds read.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "json.hpp"
#include "files.hpp"

namespace facet {

// IEEE 802.3 CRC-32, the one zlib.crc32 computes.
inline std::uint32_t crc32(const unsigned char* data, std::size_t size) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    for (std::size_t i = 0; i < size; ++i) c = table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

// Element types of the format (the dtype byte of a tensor record).
enum class DType : std::uint8_t { float32 = 1, int32 = 4 };

inline const char* dtype_name(DType t) { return t == DType::int32 ? "int32" : "float32"; }

struct WeightTensor {
    std::string name;
    DType dtype = DType::float32;
    std::vector<int> shape;
    const float* data = nullptr;        // float32 tensors: 64-byte aligned, inside the file's buffer
    const std::int32_t* ints = nullptr; // int32 tensors (indices of sparse matrices), likewise
    std::size_t count = 0;

    std::string shape_string() const {
        std::string s = "(";
        for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + (shape.size() == 1 ? ",)" : ")");
    }
};

class WeightFile {
public:
    static constexpr std::uint32_t kVersion = 1;
    static constexpr std::size_t kHeaderSize = 64;
    static constexpr std::uint64_t kMaxFileSize = std::uint64_t(1) << 31;
    static constexpr std::uint64_t kMaxMetaSize = std::uint64_t(1) << 20;
    static constexpr std::uint32_t kMaxTensors = 65536;

    static WeightFile load(const std::string& path) {
        const std::vector<std::uint8_t> bytes = read_file(path, kMaxFileSize, "weight file");
        return from_bytes(bytes.data(), bytes.size(), path);
    }

    // Parses an in-memory copy of a file; `name` only labels error messages.
    static WeightFile from_bytes(const unsigned char* bytes, std::size_t size, const std::string& name) {
        WeightFile w;
        w.path_ = name;
        w.size_ = size;
        w.bytes_.reset(static_cast<unsigned char*>(std::aligned_alloc(64, (size + 63) / 64 * 64 + 64)));
        if (!w.bytes_) throw std::bad_alloc();
        if (size) std::memcpy(w.bytes_.get(), bytes, size);
        w.parse();
        return w;
    }

    const std::string& path() const { return path_; }
    const json::Value& metadata() const { return metadata_; }
    const std::string& model_kind() const { return model_kind_; }
    const std::vector<WeightTensor>& tensors() const { return tensors_; }

    void expect_model(const std::string& kind) const {
        if (model_kind_ != kind)
            throw Error(path_ + ": is a '" + model_kind_ + "' model, expected a '" + kind + "' model");
    }

    // The float32 tensor `name`.
    const WeightTensor& tensor(const std::string& name) const { return tensor_of_type(name, DType::float32); }

    // The int32 tensor `name`.
    const WeightTensor& int32_tensor(const std::string& name) const { return tensor_of_type(name, DType::int32); }

    // The tensor `name`, which must have exactly `shape`.
    const WeightTensor& tensor(const std::string& name, const std::vector<int>& shape) const {
        const WeightTensor& t = tensor(name);
        if (t.shape != shape) {
            WeightTensor want;
            want.shape = shape;
            throw Error(path_ + ": tensor '" + name + "' has shape " + t.shape_string() + ", expected " + want.shape_string());
        }
        return t;
    }

    // Runs `read` on the metadata, turning a missing or mistyped field into an Error naming the file.
    template <class Read>
    auto read_metadata(const std::string& what, Read&& read) const -> decltype(read(std::declval<const json::Value&>())) {
        try {
            return read(metadata_);
        } catch (const Error& e) {
            throw Error(path_ + ": bad metadata (" + what + "): " + e.what());
        }
    }

private:
    const WeightTensor& tensor_of_type(const std::string& name, DType dtype) const {
        auto it = by_name_.find(name);
        if (it == by_name_.end()) throw Error(path_ + ": tensor '" + name + "' is missing");
        const WeightTensor& t = tensors_[it->second];
        if (t.dtype != dtype)
            throw Error(path_ + ": tensor '" + name + "' is " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
        return t;
    }

    struct Freer {
        void operator()(unsigned char* p) const noexcept { std::free(p); }
    };

    [[noreturn]] void fail(const std::string& why) const { throw Error(path_ + ": " + why); }

    template <class T>
    T read_le(std::uint64_t offset) const {
        T v;
        std::memcpy(&v, bytes_.get() + offset, sizeof v); // x86-64 and the format are little-endian
        return v;
    }

    void parse() {
        if (size_ < kHeaderSize) fail("not a facet weight file (too short: " + std::to_string(size_) + " bytes)");
        if (std::memcmp(bytes_.get(), "FACETWGT", 8) != 0) fail("not a facet weight file (bad magic)");
        const auto version = read_le<std::uint32_t>(8);
        if (version != kVersion)
            fail("format version " + std::to_string(version) + " is not supported (this facet reads version " +
                 std::to_string(kVersion) + "; a newer facet wrote it?)");
        if (read_le<std::uint32_t>(12) != kHeaderSize) fail("bad header size");
        const auto file_size = read_le<std::uint64_t>(16);
        if (file_size != size_)
            fail("truncated or padded: header says " + std::to_string(file_size) + " bytes, file has " + std::to_string(size_));
        const auto meta_offset = read_le<std::uint64_t>(24), meta_size = read_le<std::uint64_t>(32);
        const auto table_offset = read_le<std::uint64_t>(40);
        const auto tensor_count = read_le<std::uint32_t>(48);
        const auto crc = read_le<std::uint32_t>(52);

        if (meta_offset < kHeaderSize || meta_size == 0 || meta_size > kMaxMetaSize || meta_offset > size_ ||
            meta_size > size_ - meta_offset)
            fail("metadata region out of bounds");
        if (table_offset % 8 != 0 || table_offset < meta_offset + meta_size || table_offset > size_)
            fail("tensor table out of bounds");
        if (tensor_count > kMaxTensors) fail("too many tensors (" + std::to_string(tensor_count) + ")");
        if (crc32(bytes_.get() + kHeaderSize, size_ - kHeaderSize) != crc) fail("checksum mismatch (file corrupt)");

        try {
            metadata_ = json::parse(std::string(reinterpret_cast<const char*>(bytes_.get() + meta_offset), meta_size));
            model_kind_ = metadata_["model"].string();
        } catch (const Error& e) {
            fail(std::string("bad metadata: ") + e.what());
        }
        parse_table(table_offset, tensor_count);
    }

    void parse_table(std::uint64_t offset, std::uint32_t count) {
        std::uint64_t end_of_table = offset;
        std::vector<std::pair<std::uint64_t, std::uint64_t>> extents; // [begin, end) of every region
        auto need = [&](std::uint64_t n) {
            if (n > size_ - end_of_table) fail("tensor table truncated");
        };
        for (std::uint32_t i = 0; i < count; ++i) {
            need(2);
            const auto name_len = read_le<std::uint16_t>(end_of_table);
            end_of_table += 2;
            if (name_len == 0 || name_len > 255) fail("tensor " + std::to_string(i) + " has a bad name length");
            need(name_len + 2u);
            WeightTensor t;
            t.name.assign(reinterpret_cast<const char*>(bytes_.get() + end_of_table), name_len);
            end_of_table += name_len;
            const auto dtype = bytes_[end_of_table], ndim = bytes_[end_of_table + 1];
            end_of_table += 2;
            if (dtype == 2 || dtype == 3)
                fail("tensor '" + t.name + "' has dtype " + (dtype == 2 ? "float16" : "int8") + ", reserved and not supported yet");
            if (dtype != static_cast<int>(DType::float32) && dtype != static_cast<int>(DType::int32))
                fail("tensor '" + t.name + "' has unknown dtype " + std::to_string(dtype));
            t.dtype = static_cast<DType>(dtype);
            if (ndim > 8) fail("tensor '" + t.name + "' has " + std::to_string(ndim) + " dimensions");
            need(4u * ndim + 16u);
            std::uint64_t count_elems = 1;
            for (int d = 0; d < ndim; ++d) {
                const auto dim = read_le<std::uint32_t>(end_of_table + 4u * d);
                if (dim == 0 || dim > (1u << 30)) fail("tensor '" + t.name + "' has a bad dimension");
                count_elems *= dim;
                if (count_elems > kMaxFileSize) fail("tensor '" + t.name + "' is larger than the file");
                t.shape.push_back(static_cast<int>(dim));
            }
            end_of_table += 4u * ndim;
            const auto data_offset = read_le<std::uint64_t>(end_of_table), nbytes = read_le<std::uint64_t>(end_of_table + 8);
            end_of_table += 16;
            static_assert(sizeof(float) == sizeof(std::int32_t), "both dtypes are 4 bytes an element");
            if (nbytes != count_elems * sizeof(float)) fail("tensor '" + t.name + "' byte count does not match its shape");
            if (data_offset % 64 != 0) fail("tensor '" + t.name + "' is not 64-byte aligned");
            if (data_offset > size_ || nbytes > size_ - data_offset) fail("tensor '" + t.name + "' lies outside the file");
            t.count = static_cast<std::size_t>(count_elems);
            if (t.dtype == DType::int32) {
                t.ints = reinterpret_cast<const std::int32_t*>(bytes_.get() + data_offset);
            } else {
                t.data = reinterpret_cast<const float*>(bytes_.get() + data_offset);
                for (std::size_t k = 0; k < t.count; ++k)
                    if (!std::isfinite(t.data[k])) fail("tensor '" + t.name + "' holds NaN or infinity");
            }
            if (!by_name_.emplace(t.name, tensors_.size()).second) fail("tensor '" + t.name + "' appears twice");
            extents.push_back({data_offset, data_offset + nbytes});
            tensors_.push_back(std::move(t));
        }
        // Tensor data must not overlap each other nor the header, metadata or table.
        extents.push_back({0, end_of_table});
        std::sort(extents.begin(), extents.end());
        for (std::size_t i = 1; i < extents.size(); ++i)
            if (extents[i].first < extents[i - 1].second)
                fail("tensor data overlaps another region");
    }

    std::string path_;
    std::unique_ptr<unsigned char[], Freer> bytes_;
    std::size_t size_ = 0;
    json::Value metadata_ = json::Value::make_null();
    std::string model_kind_;
    std::vector<WeightTensor> tensors_;
    std::map<std::string, std::size_t> by_name_;
};

} // namespace facet
