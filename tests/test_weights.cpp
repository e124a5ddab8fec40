// The weight-file loader: round trips, and a clear error for every kind of broken file.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>

#include "facet_writer.hpp"
#include "int32_tensors.hpp"
#include "test_util.hpp"

using namespace facet;
using test::parse;
using test::put;

namespace {

const std::string kMeta = R"({"format": "facet", "model": "toy", "note": "caf\u00e9"})";

std::vector<std::uint8_t> toy_file() {
    return test::write_facet(kMeta, {{"a.weight", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"a.bias", {2}, {-1, 0.5f}}});
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The metadata, table offset and first tensor offset of a file (as written by write_facet).
std::uint64_t field64(const std::vector<std::uint8_t>& f, std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, f.data() + at, 8);
    return v;
}

} // namespace

TEST_CASE("weight file round trip: names, shapes, values, alignment, metadata") {
    const WeightFile w = parse(toy_file());
    CHECK(w.model_kind() == "toy");
    CHECK(w.metadata()["note"].string() == "caf\xc3\xa9");
    REQUIRE(w.tensors().size() == 2);
    const WeightTensor& a = w.tensor("a.weight", {2, 3});
    CHECK(a.data[5] == 6.0f);
    CHECK(reinterpret_cast<std::uintptr_t>(a.data) % 64 == 0);
    CHECK(w.tensor("a.bias").data[0] == -1.0f);
    CHECK_THROWS_WITH_AS(w.tensor("a.gamma"), "test.facet: tensor 'a.gamma' is missing", Error);
    CHECK_THROWS_WITH_AS(w.tensor("a.weight", {3, 2}), "test.facet: tensor 'a.weight' has shape (2, 3), expected (3, 2)", Error);
    CHECK_THROWS_WITH_AS(w.expect_model("retinaface"), "test.facet: is a 'toy' model, expected a 'retinaface' model", Error);
}

TEST_CASE("the Python converter's files load and carry their metadata") {
    const std::string path = test::weights_path("retinaface_mnet025_official.facet");
    REQUIRE(std::ifstream(path).good());
    const WeightFile w = WeightFile::load(path);
    CHECK(w.model_kind() == "retinaface");
    CHECK(w.metadata()["retinaface"]["activations"]["body.stage1.0.0"]["kind"].string() == "leaky_relu");
    CHECK(w.metadata()["retinaface"]["activations"]["ssh1.out"]["kind"].string() == "relu");
    CHECK(w.tensor("body.stage1.0.0.weight").shape == std::vector<int>{8, 3, 3, 3});
}

TEST_CASE("a missing file is an error naming it") {
    CHECK_THROWS_WITH_AS(WeightFile::load("/nonexistent/model.facet"), "/nonexistent/model.facet: cannot open weight file (No such file or directory)", Error);
}

TEST_CASE("a file truncated anywhere is refused") {
    const auto good = toy_file();
    const std::uint64_t table = field64(good, 40);
    for (std::size_t cut : {std::size_t(0), std::size_t(7), std::size_t(63), std::size_t(64), std::size_t(table),
                            std::size_t(table + 5), good.size() - 1}) {
        CAPTURE(cut);
        std::vector<std::uint8_t> f(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
        CHECK_THROWS_AS(parse(f), Error);
        // Even with the header's size and CRC made to agree with the cut, nothing reads past the end.
        if (cut >= 64) {
            put<std::uint64_t>(f, 16, f.size());
            test::refresh_crc(f);
            CHECK_THROWS_AS(parse(f), Error);
        }
    }
}

TEST_CASE("header damage: magic, version, header size, checksum") {
    auto f = toy_file();
    f[0] = 'X';
    CHECK_THROWS_WITH_AS(parse(f), "test.facet: not a facet weight file (bad magic)", Error);
    f = toy_file();
    put<std::uint32_t>(f, 8, 3);
    CHECK_THROWS_WITH_AS(parse(f), doctest::Contains("format version 3 is not supported (this facet reads versions 1 to 2"), Error);
    f = toy_file();
    put<std::uint32_t>(f, 8, 0);
    CHECK_THROWS_WITH_AS(parse(f), doctest::Contains("format version 0 is not supported"), Error);
    f = toy_file();
    put<std::uint32_t>(f, 12, 32);
    CHECK_THROWS_WITH_AS(parse(f), "test.facet: bad header size", Error);
    f = toy_file();
    f.back() ^= 0x40;
    CHECK_THROWS_WITH_AS(parse(f), "test.facet: checksum mismatch (file corrupt)", Error);
}

TEST_CASE("table damage: bounds, alignment, dtype, overlap, duplicates, NaN") {
    const auto good = toy_file();
    const std::uint64_t table = field64(good, 40);
    const std::size_t first_offset = table + 2 + 8 + 2 + 8; // name_len, "a.weight", dtype+ndim, 2 dims
    auto broken = [&](auto&& edit) {
        auto f = good;
        edit(f);
        test::refresh_crc(f);
        return f;
    };
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint64_t>(f, first_offset, 1u << 20); })),
                         "test.facet: tensor 'a.weight' lies outside the file", Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint64_t>(f, first_offset, 65); })),
                         "test.facet: tensor 'a.weight' is not 64-byte aligned", Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint64_t>(f, first_offset, 64); })),
                         "test.facet: tensor data overlaps another region", Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint64_t>(f, first_offset + 8, 20); })),
                         "test.facet: tensor 'a.weight' byte count does not match its shape", Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { f[table + 2 + 8] = 2; })),
                         "test.facet: tensor 'a.weight' has dtype float16, reserved and not supported yet", Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint32_t>(f, 48, 3); })), "test.facet: tensor 2 has a bad name length", Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint32_t>(f, 48, 1000); })), doctest::Contains("test.facet: tensor"), Error);
    CHECK_THROWS_WITH_AS(parse(broken([&](auto& f) { put<std::uint64_t>(f, 32, 1u << 30); })),
                         "test.facet: metadata region out of bounds", Error);

    const auto dup = test::write_facet(kMeta, {{"x", {1}, {1}}, {"x", {1}, {2}}});
    CHECK_THROWS_WITH_AS(parse(dup), "test.facet: tensor 'x' appears twice", Error);
    const auto nan = test::write_facet(kMeta, {{"x", {2}, {1, std::numeric_limits<float>::quiet_NaN()}}});
    CHECK_THROWS_WITH_AS(parse(nan), "test.facet: tensor 'x' holds NaN or infinity", Error);
    const auto inf = test::write_facet(kMeta, {{"x", {1}, {std::numeric_limits<float>::infinity()}}});
    CHECK_THROWS_AS(parse(inf), Error);
}

TEST_CASE("metadata damage: not JSON, no model kind") {
    CHECK_THROWS_WITH_AS(parse(test::write_facet("{\"model\": ", {})), doctest::Contains("bad metadata: invalid JSON"), Error);
    CHECK_THROWS_WITH_AS(parse(test::write_facet("{}", {})), "test.facet: bad metadata: missing key 'model'", Error);
}

TEST_CASE("a RetinaFace file with a missing field, tensor or activation is refused by name") {
    const std::string path = test::weights_path("retinaface_mnet025.facet");
    REQUIRE(std::ifstream(path).good());
    const WeightFile real = WeightFile::load(path);
    const auto bytes = read_bytes(path);
    const std::string meta(reinterpret_cast<const char*>(bytes.data()) + field64(bytes, 24), field64(bytes, 32));
    std::vector<test::TensorSpec> tensors;
    for (const WeightTensor& t : real.tensors())
        tensors.push_back({t.name, std::vector<std::uint32_t>(t.shape.begin(), t.shape.end()), std::vector<float>(t.data, t.data + t.count)});

    auto with_meta = [&](const std::string& from, const std::string& to) {
        std::string m = meta;
        const auto at = m.find(from);
        REQUIRE(at != std::string::npos);
        m.replace(at, from.size(), to);
        return RetinaFaceModel(parse(test::write_facet(m, tensors)));
    };
    CHECK_NOTHROW(with_meta("\"steps\"", "\"steps\"")); // the rewrite itself is faithful
    CHECK_THROWS_WITH_AS(with_meta("\"steps\"", "\"stepz\""), doctest::Contains("missing key 'steps'"), Error);
    CHECK_THROWS_WITH_AS(with_meta("\"ssh2.out\"", "\"ssh2.oot\""), doctest::Contains("missing key 'ssh2.out'"), Error);
    CHECK_THROWS_WITH_AS(with_meta("\"relu\"", "\"gelu\""), doctest::Contains("unknown activation kind 'gelu'"), Error);

    auto without = tensors;
    without.erase(without.begin() + 7);
    CHECK_THROWS_WITH_AS(RetinaFaceModel(parse(test::write_facet(meta, without))),
                         doctest::Contains(("tensor '" + tensors[7].name + "' is missing").c_str()), Error);
    auto reshaped = tensors;
    reshaped[0].shape = {8, 3, 9, 1};
    CHECK_THROWS_WITH_AS(RetinaFaceModel(parse(test::write_facet(meta, reshaped))),
                         doctest::Contains("tensor 'body.stage1.0.0.weight' has shape (8, 3, 9, 1), expected (8, 3, 3, 3)"), Error);
}

TEST_CASE("JSON reader: escapes, nesting limit, garbage") {
    const json::Value v = json::parse(R"({"a": [1, -2.5e3, true, null], "s": "x\n\"y\" \ud83d\ude00"})");
    CHECK(v["a"][1].number() == -2500.0);
    CHECK(v["a"][2].boolean());
    CHECK(v["a"][3].is_null());
    CHECK(v["s"].string() == "x\n\"y\" \xf0\x9f\x98\x80");
    CHECK_THROWS_AS(json::parse(std::string(100, '[')), Error);
    CHECK_THROWS_AS(json::parse("{\"a\": 01x}"), Error);
    CHECK_THROWS_AS(json::parse("[1, 2"), Error);
    CHECK_THROWS_AS(v["a"]["key"], Error);
}

TEST_CASE("int32 tensors (dtype 4) load as integers, and each accessor refuses the other type") {
    // Includes bit patterns that are NaN as float32: integers are not checked for finiteness.
    const std::vector<std::int32_t> ints = {0, 7, -1, 2147483647, -2147483647 - 1, 0x7fc00000};
    auto f = test::write_facet(kMeta, {{"m.indices", {2, 3}, test::int32_bits(ints)}, {"m.values", {2}, {0.5f, 2}}});
    test::set_dtype(f, {"m.indices"});
    const WeightFile w = parse(f);
    const WeightTensor& t = w.int32_tensor("m.indices");
    CHECK(t.dtype == DType::int32);
    CHECK(t.shape == std::vector<int>{2, 3});
    CHECK(t.data == nullptr);
    REQUIRE(t.ints != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(t.ints) % 64 == 0);
    CHECK(std::vector<std::int32_t>(t.ints, t.ints + t.count) == ints);
    CHECK(w.tensor("m.values").data[1] == 2.0f);
    CHECK_THROWS_WITH_AS(w.tensor("m.indices"), "test.facet: tensor 'm.indices' is int32, expected float32", Error);
    CHECK_THROWS_WITH_AS(w.tensor("m.indices", {2, 3}), "test.facet: tensor 'm.indices' is int32, expected float32", Error);
    CHECK_THROWS_WITH_AS(w.int32_tensor("m.values"), "test.facet: tensor 'm.values' is float32, expected int32", Error);
    CHECK_THROWS_WITH_AS(w.int32_tensor("m.gone"), "test.facet: tensor 'm.gone' is missing", Error);
}

TEST_CASE("int32 tensors get every check float32 ones get; unknown dtypes are refused") {
    auto f = test::write_facet(kMeta, {{"idx", {4}, test::int32_bits({1, 2, 3, 4})}});
    test::set_dtype(f, {"idx"});
    const std::uint64_t table = field64(f, 40);
    const std::size_t offset_field = table + 2 + 3 + 2 + 4; // name_len, "idx", dtype + ndim, 1 dim
    auto broken = f;
    put<std::uint64_t>(broken, offset_field + 8, 12);
    test::refresh_crc(broken);
    CHECK_THROWS_WITH_AS(parse(broken), "test.facet: tensor 'idx' byte count does not match its shape", Error);
    broken = f;
    put<std::uint64_t>(broken, offset_field, 1u << 20);
    test::refresh_crc(broken);
    CHECK_THROWS_WITH_AS(parse(broken), "test.facet: tensor 'idx' lies outside the file", Error);
    for (std::uint8_t dtype : {0, 6, 255}) {
        broken = f;
        test::set_dtype(broken, {"idx"}, dtype);
        CHECK_THROWS_WITH_AS(parse(broken), ("test.facet: tensor 'idx' has unknown dtype " + std::to_string(dtype)).c_str(), Error);
    }
}

TEST_CASE("version 2: int8 and bfloat16 tensors load as their bytes, each accessor refuses the others") {
    // bfloat16 0x3FC0 = 1.5, 0xC000 = -2, 0x0001 the least subnormal: widening is exact.
    const std::vector<std::uint8_t> int8_bytes = {0x00, 0x7F, 0x80, 0xFF, 0x05};
    const std::vector<std::uint8_t> bf16_bytes = {0xC0, 0x3F, 0x00, 0xC0, 0x01, 0x00};
    const auto f = test::write_facet(kMeta, {{"q.weight", {5}, DType::int8, int8_bytes},
                                             {"h.weight", {3}, DType::bfloat16, bf16_bytes},
                                             {"q.weight_scale", {1}, {0.25f}}});
    CHECK(f[8] == 2);
    const WeightFile w = parse(f);
    const WeightTensor& q = w.int8_tensor("q.weight");
    REQUIRE(q.int8s != nullptr);
    CHECK(q.data == nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(q.int8s) % 64 == 0);
    CHECK(std::vector<int>(q.int8s, q.int8s + q.count) == std::vector<int>{0, 127, -128, -1, 5});
    const WeightTensor& h = w.bf16_tensor("h.weight");
    REQUIRE(h.bf16s != nullptr);
    CHECK(bfloat16_to_float(h.bf16s[0]) == 1.5f);
    CHECK(bfloat16_to_float(h.bf16s[1]) == -2.0f);
    CHECK(bfloat16_to_float(h.bf16s[2]) == std::ldexp(1.0f, -133));
    CHECK(w.dtype_of("q.weight") == DType::int8);
    CHECK(w.dtype_of("h.weight") == DType::bfloat16);
    CHECK(w.dtype_of("q.weight_scale") == DType::float32);
    CHECK(w.has("q.weight"));
    CHECK_FALSE(w.has("q.bias"));
    CHECK_THROWS_WITH_AS(w.dtype_of("q.bias"), "test.facet: tensor 'q.bias' is missing", Error);
    CHECK_THROWS_WITH_AS(w.tensor("q.weight"), "test.facet: tensor 'q.weight' is int8, expected float32", Error);
    CHECK_THROWS_WITH_AS(w.int8_tensor("h.weight"), "test.facet: tensor 'h.weight' is bfloat16, expected int8", Error);
    CHECK_THROWS_WITH_AS(w.bf16_tensor("q.weight_scale"), "test.facet: tensor 'q.weight_scale' is float32, expected bfloat16", Error);
    CHECK_THROWS_WITH_AS(w.tensor_of_type("q.weight", DType::int8, {1, 5}), "test.facet: tensor 'q.weight' has shape (5,), expected (1, 5)", Error);
}

TEST_CASE("version 2 dtypes: byte counts by element size, no bfloat16 NaN or infinity, not in a version-1 file") {
    // An int8 record claiming 4 bytes an element, as a version-1 writer would count.
    auto f = test::write_facet(kMeta, {{"q", {2}, DType::int8, {1, 2}}});
    const std::uint64_t table = field64(f, 40);
    const std::size_t nbytes_field = table + 2 + 1 + 2 + 4 + 8; // name_len, "q", dtype + ndim, 1 dim, offset
    put<std::uint64_t>(f, nbytes_field, 8);
    test::refresh_crc(f);
    CHECK_THROWS_WITH_AS(parse(f), "test.facet: tensor 'q' byte count does not match its shape", Error);

    for (std::uint16_t bits : {0x7F80, 0xFF80, 0x7FC0, 0x7F81}) { // +inf, -inf, quiet and signalling NaN
        const std::vector<std::uint8_t> bytes = {0, 0, static_cast<std::uint8_t>(bits & 0xFF), static_cast<std::uint8_t>(bits >> 8)};
        const auto bad = test::write_facet(kMeta, {{"h", {2}, DType::bfloat16, bytes}});
        CHECK_THROWS_WITH_AS(parse(bad), "test.facet: tensor 'h' holds NaN or infinity", Error);
    }

    for (DType dtype : {DType::int8, DType::bfloat16}) {
        const auto elements = static_cast<std::uint32_t>(4 / dtype_size(dtype));
        auto old = test::write_facet(kMeta, {{"w", {elements}, dtype, {1, 2, 3, 4}}});
        put<std::uint32_t>(old, 8, 1);
        test::refresh_crc(old);
        CHECK_THROWS_WITH_AS(parse(old),
                             ("test.facet: tensor 'w' has dtype " + std::string(dtype_name(dtype)) +
                              ", which format version 1 does not have").c_str(),
                             Error);
    }
}
