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

// Element types of the format (the dtype byte of a tensor record). int8 and bfloat16 came with
// version 2 (quantised and bf16 models); code 2, float16, stays reserved.
enum class DType : std::uint8_t { float32 = 1, int8 = 3, int32 = 4, bfloat16 = 5 };

inline const char* dtype_name(DType t) {
    switch (t) {
    case DType::float32: return "float32";
    case DType::int8: return "int8";
    case DType::int32: return "int32";
    case DType::bfloat16: return "bfloat16";
    }
    return "?";
}

inline std::size_t dtype_size(DType t) { return t == DType::int8 ? 1 : t == DType::bfloat16 ? 2 : 4; }

// A bfloat16 is the upper half of an IEEE float32: widening is a shift, and exact.
inline float bfloat16_to_float(std::uint16_t b) {
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

struct WeightTensor {
    std::string name;
    DType dtype = DType::float32;
    std::vector<int> shape;
    // The elements, 64-byte aligned inside the file's buffer: the one pointer of the tensor's dtype
    // is set, the others are null.
    const float* data = nullptr;          // float32
    const std::int32_t* ints = nullptr;   // int32 (indices of sparse matrices)
    const std::int8_t* int8s = nullptr;   // int8 (quantised weights)
    const std::uint16_t* bf16s = nullptr; // bfloat16 (bf16 weights)
    std::size_t count = 0;

    std::string shape_string() const {
        std::string s = "(";
        for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
        return s + (shape.size() == 1 ? ",)" : ")");
    }
};

class WeightFile {
public:
    // Version 2 added the int8 and bfloat16 dtypes; a file holding neither is written as version 1,
    // so that an older facet still reads every fp32 model.
    static constexpr std::uint32_t kVersion = 2;
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

    // The int8 tensor `name`.
    const WeightTensor& int8_tensor(const std::string& name) const { return tensor_of_type(name, DType::int8); }

    // The bfloat16 tensor `name`.
    const WeightTensor& bf16_tensor(const std::string& name) const { return tensor_of_type(name, DType::bfloat16); }

    bool has(const std::string& name) const { return by_name_.count(name) != 0; }

    // The dtype of tensor `name`: how a loader tells which precision a layer was stored in.
    DType dtype_of(const std::string& name) const { return find(name).dtype; }

    // The tensor `name` of `dtype`, which must have exactly `shape`.
    const WeightTensor& tensor_of_type(const std::string& name, DType dtype, const std::vector<int>& shape) const {
        const WeightTensor& t = tensor_of_type(name, dtype);
        if (t.shape != shape) {
            WeightTensor want;
            want.shape = shape;
            throw Error(path_ + ": tensor '" + name + "' has shape " + t.shape_string() + ", expected " + want.shape_string());
        }
        return t;
    }

    // The float32 tensor `name`, which must have exactly `shape`.
    const WeightTensor& tensor(const std::string& name, const std::vector<int>& shape) const {
        return tensor_of_type(name, DType::float32, shape);
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

    // The tensor `name` of `dtype`.
    const WeightTensor& tensor_of_type(const std::string& name, DType dtype) const {
        const WeightTensor& t = find(name);
        if (t.dtype != dtype)
            throw Error(path_ + ": tensor '" + name + "' is " + dtype_name(t.dtype) + ", expected " + dtype_name(dtype));
        return t;
    }

private:
    const WeightTensor& find(const std::string& name) const {
        auto it = by_name_.find(name);
        if (it == by_name_.end()) throw Error(path_ + ": tensor '" + name + "' is missing");
        return tensors_[it->second];
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
        if (version < 1 || version > kVersion)
            fail("format version " + std::to_string(version) + " is not supported (this facet reads versions 1 to " +
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
        parse_table(table_offset, tensor_count, version);
    }

    void parse_table(std::uint64_t offset, std::uint32_t count, std::uint32_t version) {
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
            if (dtype == 2) fail("tensor '" + t.name + "' has dtype float16, reserved and not supported yet");
            if (dtype != static_cast<int>(DType::float32) && dtype != static_cast<int>(DType::int8) &&
                dtype != static_cast<int>(DType::int32) && dtype != static_cast<int>(DType::bfloat16))
                fail("tensor '" + t.name + "' has unknown dtype " + std::to_string(dtype));
            t.dtype = static_cast<DType>(dtype);
            if (version < 2 && (t.dtype == DType::int8 || t.dtype == DType::bfloat16))
                fail("tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) + ", which format version 1 does not have");
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
            if (nbytes != count_elems * dtype_size(t.dtype)) fail("tensor '" + t.name + "' byte count does not match its shape");
            if (data_offset % 64 != 0) fail("tensor '" + t.name + "' is not 64-byte aligned");
            if (data_offset > size_ || nbytes > size_ - data_offset) fail("tensor '" + t.name + "' lies outside the file");
            t.count = static_cast<std::size_t>(count_elems);
            const unsigned char* elements = bytes_.get() + data_offset;
            switch (t.dtype) {
            case DType::int32: t.ints = reinterpret_cast<const std::int32_t*>(elements); break;
            case DType::int8: t.int8s = reinterpret_cast<const std::int8_t*>(elements); break;
            case DType::float32:
                t.data = reinterpret_cast<const float*>(elements);
                for (std::size_t k = 0; k < t.count; ++k)
                    if (!std::isfinite(t.data[k])) fail("tensor '" + t.name + "' holds NaN or infinity");
                break;
            case DType::bfloat16:
                t.bf16s = reinterpret_cast<const std::uint16_t*>(elements);
                for (std::size_t k = 0; k < t.count; ++k) // all exponent bits set: infinity or NaN
                    if ((t.bf16s[k] & 0x7F80u) == 0x7F80u) fail("tensor '" + t.name + "' holds NaN or infinity");
                break;
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

// A layer's weights as floats, and whether the file stores them in bf16 (then widened, exactly):
// how every model reads a tensor that may be float32 or bfloat16 (FORMAT.md, "Reduced precision").
struct LayerWeights {
    std::vector<float> values;
    bool bf16 = false;
};

inline LayerWeights read_layer_weights(const WeightFile& f, const std::string& name, const std::vector<int>& shape) {
    if (f.dtype_of(name) != DType::bfloat16) {
        const WeightTensor& t = f.tensor(name, shape);
        return {std::vector<float>(t.data, t.data + t.count), false};
    }
    const WeightTensor& t = f.tensor_of_type(name, DType::bfloat16, shape);
    LayerWeights w{std::vector<float>(t.count), true};
    for (std::size_t i = 0; i < t.count; ++i) w.values[i] = bfloat16_to_float(t.bf16s[i]);
    return w;
}

} // namespace facet
