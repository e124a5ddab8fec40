// The mesh decoder against an independent PyTorch reference (tests/mesh/make_reference.py) on every
// instruction set, for K = 1, 2, 3, 6 and both outputs, and the loader's refusal of malformed
// sparse matrices. The decoders are tests/mesh/fixtures/*.pth, converted by the build into
// <build>/mesh/*.facet with the mesh-decoder recipe.
#include <doctest/doctest.h>
#include <facet/models/mesh_decoder.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "int32_tensors.hpp"
#include "npy.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

// Parity bound: max |facet - reference| over the output, relative to the largest |reference|.
constexpr double kParityTolerance = 1e-4;

const char* const kDecoders[] = {"k1_xyz", "k1_xyzrgb", "k2_xyz", "k2_xyzrgb", "k3_xyz",
                                 "k3_xyzrgb", "k6_xyz", "k6_xyzrgb", "k6_xyzrgb_full"};

std::string decoder_path(const std::string& name) { return std::string(FACET_BINARY_DIR) + "/mesh/" + name + ".facet"; }
std::string fixture_path(const std::string& file) { return test::source_path("tests/mesh/fixtures/" + file); }

double max_abs(const std::vector<float>& v) {
    double m = 0.0;
    for (float x : v) m = std::max(m, static_cast<double>(std::fabs(x)));
    return m;
}

// max |a - b| / max |b|; NaN counts as the worst.
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0.0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        const double e = std::fabs(static_cast<double>(a[i]) - b[i]);
        if (!(e <= worst)) worst = e;
    }
    return worst / max_abs(b);
}

// Every tensor of a weight file, as specs write_facet can write again (int32 ones as their bits).
struct FileContents {
    std::string metadata;
    std::vector<test::TensorSpec> tensors;
    std::vector<std::string> int32_names;

    test::TensorSpec& operator[](const std::string& name) {
        for (auto& t : tensors)
            if (t.name == name) return t;
        FAIL("no tensor " << name);
        return tensors.front();
    }
    std::vector<std::uint8_t> write() const {
        auto f = test::write_facet(metadata, tensors);
        test::set_dtype(f, int32_names);
        return f;
    }
};

FileContents read_contents(const std::string& path) {
    const WeightFile w = WeightFile::load(path);
    std::ifstream in(path, std::ios::binary);
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    std::uint64_t meta_offset, meta_size;
    std::memcpy(&meta_offset, bytes.data() + 24, 8);
    std::memcpy(&meta_size, bytes.data() + 32, 8);
    FileContents c;
    c.metadata.assign(bytes.data() + meta_offset, meta_size);
    for (const WeightTensor& t : w.tensors()) {
        std::vector<std::uint32_t> shape(t.shape.begin(), t.shape.end());
        if (t.dtype == DType::int32) {
            c.tensors.push_back({t.name, shape, test::int32_bits({t.ints, t.ints + t.count})});
            c.int32_names.push_back(t.name);
        } else {
            c.tensors.push_back({t.name, shape, {t.data, t.data + t.count}});
        }
    }
    return c;
}

std::int32_t int_at(const test::TensorSpec& t, std::size_t i) {
    std::int32_t v;
    std::memcpy(&v, &t.values[i], 4);
    return v;
}
void set_int(test::TensorSpec& t, std::size_t i, std::int32_t v) { std::memcpy(&t.values[i], &v, 4); }

} // namespace

TEST_CASE("mesh decoder matches the PyTorch reference on every instruction set (K = 1, 2, 3, 6; xyz and xyz + rgb)") {
    for (const std::string name : kDecoders) {
        CAPTURE(name);
        const auto model = MeshDecoderModel::from_file(decoder_path(name));
        const test::Npy latent = test::load_npy(fixture_path(name + ".latent.npy"));
        const test::Npy expected = test::load_npy(fixture_path(name + ".expected.npy"));
        REQUIRE(expected.shape == std::vector<int>{model->vertex_count(), model->output_channels()});
        for (const KernelSet* ks : test::all_kernel_sets()) {
            CAPTURE(std::string(ks->isa));
            MeshDecoder decoder(model, {}, *ks);
            const std::vector<float> out = decoder.decode(latent.data);
            const double error = relative_error(out, expected.data);
            CAPTURE(error);
            CHECK(error < kParityTolerance);
            CHECK(decoder.decode(latent.data) == out); // the scratch reuse changes nothing
        }
    }
}

TEST_CASE("mesh decoder: sizes from the file, thread-count invariance, latent size checked") {
    const auto model = MeshDecoderModel::from_file(decoder_path("k6_xyzrgb_full"));
    CHECK(model->level_vertices() == std::vector<int>{12, 42, 162, 642, 2562});
    CHECK(model->level_channels() == std::vector<int>{64, 64, 32, 32, 16});
    CHECK(model->order() == 6);
    CHECK(model->latent_size() == 32);
    CHECK(model->output_channels() == 6);
    CHECK(model->faces().size() == 5120);
    CHECK(model->rest_vertices().size() == 2562 * 3);
    CHECK(MeshDecoderModel::from_file(decoder_path("k2_xyz"))->output_channels() == 3);

    const auto latent = test::random_floats(32, 5);
    MeshDecoder one(model), two(model, {2});
    CHECK(one.decode(latent) == two.decode(latent));
    CHECK_THROWS_WITH_AS(one.decode(std::vector<float>(31)), "mesh decoder: latent has 31 values, the model takes 32", Error);
}

TEST_CASE("a malformed sparse matrix is refused by name: range, order, nnz, row pointers, shape, dtype") {
    const FileContents good = read_contents(decoder_path("k1_xyz"));
    const auto load = [](const FileContents& c) { return MeshDecoderModel(test::parse(c.write())); };
    CHECK_NOTHROW(load(good)); // the rewrite itself is faithful
    const auto refused = [&](auto&& edit, const std::string& why) {
        FileContents c = good;
        edit(c);
        CHECK_THROWS_WITH_AS(load(c), doctest::Contains(why.c_str()), Error);
    };
    // laplacian.1 is 42 x 42, each row 5 or 6 neighbours in increasing order.
    refused([](FileContents& c) { set_int(c["laplacian.1.indices"], 3, 42); },
            "sparse matrix 'laplacian.1' row 0 has column 42 out of range");
    refused([](FileContents& c) { set_int(c["laplacian.1.indices"], 0, -1); },
            "sparse matrix 'laplacian.1' row 0 has column -1 out of range");
    refused([](FileContents& c) {
        auto& indices = c["laplacian.1.indices"];
        const std::int32_t first = int_at(indices, 0);
        set_int(indices, 0, int_at(indices, 1));
        set_int(indices, 1, first);
    }, "sparse matrix 'laplacian.1' row 0 has columns that are not strictly increasing");
    // upsample.2's rows 0 .. 41 copy the old vertices (one entry each); row 42 averages an edge's two ends.
    refused([](FileContents& c) { set_int(c["upsample.2.indices"], 43, int_at(c["upsample.2.indices"], 42)); },
            "sparse matrix 'upsample.2' row 42 has columns that are not strictly increasing");
    refused([](FileContents& c) { // one value short of the indices
        c["laplacian.1.values"].values.pop_back();
        c["laplacian.1.values"].shape[0] -= 1;
    }, "sparse matrix 'laplacian.1' has (240,) indices and (239,) values: not one nnz");
    refused([](FileContents& c) { // indices and values both one short: the row pointers disagree
        for (const char* part : {"laplacian.1.indices", "laplacian.1.values"}) {
            c[part].values.pop_back();
            c[part].shape[0] -= 1;
        }
    }, "sparse matrix 'laplacian.1' has row pointers that end at 240, not at nnz 239");
    refused([](FileContents& c) { set_int(c["laplacian.1.indptr"], 0, 1); },
            "sparse matrix 'laplacian.1' has row pointers that do not start at 0");
    refused([](FileContents& c) { set_int(c["laplacian.1.indptr"], 5, int_at(c["laplacian.1.indptr"], 4) - 1); },
            "sparse matrix 'laplacian.1' row 4 has bad row pointers");
    refused([](FileContents& c) { set_int(c["upsample.1.shape"], 1, 13); },
            "sparse matrix 'upsample.1' is 42 x 13, expected 42 x 12");
    refused([](FileContents& c) {
        auto& names = c.int32_names;
        names.erase(std::find(names.begin(), names.end(), "laplacian.2.indices"));
    }, "tensor 'laplacian.2.indices' is float32, expected int32");
    refused([](FileContents& c) { c["laplacian.2.indptr"].name = "laplacian.2.rowptr"; },
            "tensor 'laplacian.2.indptr' is missing");
}

TEST_CASE("mesh decoder metadata and tensors are checked") {
    const FileContents good = read_contents(decoder_path("k1_xyz"));
    const auto with_meta = [&](const std::string& from, const std::string& to) {
        FileContents c = good;
        const auto at = c.metadata.find(from);
        REQUIRE(at != std::string::npos);
        c.metadata.replace(at, from.size(), to);
        return MeshDecoderModel(test::parse(c.write()));
    };
    CHECK_THROWS_WITH_AS(with_meta("\"output\":\"xyz\"", "\"output\":\"xyzw\""), doctest::Contains("output must be 'xyz' or 'xyz_rgb'"), Error);
    CHECK_THROWS_WITH_AS(with_meta("\"order\":1", "\"order\":0"), doctest::Contains("order must be a positive integer"), Error);
    CHECK_THROWS_WITH_AS(with_meta("\"order\":1", "\"order\":2"),
                         doctest::Contains("tensor 'convs.0.weight' has shape (1, 5, 17), expected (2, 5, 17)"), Error);
    CHECK_THROWS_WITH_AS(with_meta("\"vertices\":[12,42,162]", "\"vertices\":[12,42,163]"),
                         doctest::Contains("sparse matrix 'upsample.2' is 162 x 42, expected 163 x 42"), Error);
    CHECK_THROWS_WITH_AS(with_meta("\"model\":\"mesh_decoder\"", "\"model\":\"retinaface\""),
                         doctest::Contains("is a 'retinaface' model, expected a 'mesh_decoder' model"), Error);
    FileContents bad_face = good;
    set_int(bad_face["mesh.faces"], 7, 162);
    CHECK_THROWS_WITH_AS(MeshDecoderModel(test::parse(bad_face.write())), doctest::Contains("'mesh.faces' names a vertex out of range"), Error);
}
