// The graph kernels (sparse x dense product, Chebyshev convolution) on every instruction set this
// CPU runs, against the scalar references, over odd feature widths (1, 3, 7, 17, 33 ...), sparse
// matrices with empty and full rows, and every order K the mesh decoder uses.
#include <doctest/doctest.h>
#include <facet/kernels/reference_graph.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "test_util.hpp"

using namespace facet;
using facet::test::all_kernel_sets;

namespace {

constexpr double kTolerance = 1e-5;

// A random rows x cols CSR matrix, each row with 0 .. max_per_row distinct sorted columns (some
// rows empty, some full when cols is small). Every row's absolute values sum to at most 1, as a
// scaled Laplacian's do, so Chebyshev terms stay bounded however high K goes.
SparseMatrix random_sparse(int rows, int cols, int max_per_row, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    SparseMatrix m;
    m.rows = rows;
    m.cols = cols;
    m.row_begin.push_back(0);
    std::vector<std::int32_t> all(static_cast<std::size_t>(cols));
    for (int c = 0; c < cols; ++c) all[c] = c;
    for (int r = 0; r < rows; ++r) {
        const int count = std::uniform_int_distribution<int>(0, std::min(max_per_row, cols))(rng);
        std::shuffle(all.begin(), all.end(), rng);
        std::vector<std::int32_t> picked(all.begin(), all.begin() + count);
        std::sort(picked.begin(), picked.end());
        for (std::int32_t c : picked) {
            m.columns.push_back(c);
            m.values.push_back(value(rng) / static_cast<float>(std::max(count, 1)));
        }
        m.row_begin.push_back(static_cast<std::int32_t>(m.columns.size()));
    }
    return m;
}

void fill_random(const GraphFeatures& x, unsigned seed) {
    const auto values = test::random_floats(static_cast<std::size_t>(x.vertices) * x.channels, seed);
    for (int v = 0; v < x.vertices; ++v)
        for (int c = 0; c < x.channels; ++c) x.row(v)[c] = values[static_cast<std::size_t>(v) * x.channels + c];
}

// Fills every lane, padding included, with garbage: kernels must overwrite all of it.
void fill_garbage(const GraphFeatures& x) {
    for (int v = 0; v < x.vertices; ++v) std::fill(x.row(v), x.row(v) + x.stride, -12345.0f);
}

// max |a - b| / (1 + |b|) over the real channels.
double max_rel_error(const GraphFeatures& a, const GraphFeatures& b) {
    double worst = 0.0;
    for (int v = 0; v < b.vertices; ++v)
        for (int c = 0; c < b.channels; ++c) {
            const double e = std::fabs(a.row(v)[c] - b.row(v)[c]) / (1.0 + std::fabs(b.row(v)[c]));
            if (!(e <= worst)) worst = e; // NaN counts as the worst
        }
    return worst;
}

bool padding_is_zero(const GraphFeatures& x) {
    for (int v = 0; v < x.vertices; ++v)
        for (int c = x.channels; c < x.stride; ++c)
            if (x.row(v)[c] != 0.0f) return false;
    return true;
}

bool identical(const GraphFeatures& a, const GraphFeatures& b) {
    for (int v = 0; v < a.vertices; ++v)
        if (!std::equal(a.row(v), a.row(v) + a.stride, b.row(v))) return false;
    return true;
}

void check_sparse_product(int rows, int cols, int channels, unsigned seed) {
    const SparseMatrix a = random_sparse(rows, cols, 9, seed);
    GraphFeatureBuffer x(cols, channels), expected(rows, channels);
    fill_random(x.view(), seed + 1);
    ref::sparse_dense_product(a, x.view(), expected.view());
    for (const KernelSet* ks : all_kernel_sets()) {
        GraphFeatureBuffer out(rows, channels);
        fill_garbage(out.view());
        ks->spmm_csr(a, x.view(), out.view(), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(max_rel_error(out.view(), expected.view()) < kTolerance);
        CHECK(padding_is_zero(out.view()));
    }
}

void check_chebyshev(int vertices, int order, int cin, int cout, bool elu, unsigned seed) {
    const SparseMatrix laplacian = random_sparse(vertices, vertices, 7, seed);
    GraphFeatureBuffer x(vertices, cin), expected(vertices, cout);
    fill_random(x.view(), seed + 1);
    const auto w = test::random_floats(static_cast<std::size_t>(order) * cin * cout, seed + 2);
    const auto bias = test::random_floats(static_cast<std::size_t>(cout), seed + 3);
    ref::chebyshev_conv(laplacian, x.view(), w.data(), bias.data(), order, cout, elu, expected.view());
    const PackedChebConv packed = pack_cheb_conv(w.data(), bias.data(), order, cin, cout, elu);
    AlignedFloats scratch = make_aligned_floats(chebyshev_scratch_floats(order, vertices, cin));
    for (const KernelSet* ks : all_kernel_sets()) {
        GraphFeatureBuffer out(vertices, cout);
        fill_garbage(out.view());
        ks->chebyshev_conv(laplacian, x.view(), packed, scratch.get(), out.view(), 1);
        CAPTURE(std::string(ks->isa));
        CHECK(max_rel_error(out.view(), expected.view()) < kTolerance);
        CHECK(padding_is_zero(out.view()));
    }
}

} // namespace

TEST_CASE("reference graph kernels match hand-computed cases") {
    // A path 0 - 1 - 2 with L~ = -D^-1/2 A D^-1/2 (lmax = 2): degrees 1, 2, 1.
    const float s = static_cast<float>(-1.0 / std::sqrt(2.0));
    const SparseMatrix path{3, 3, {0, 1, 3, 4}, {1, 0, 2, 1}, {s, s, s, s}};
    GraphFeatureBuffer x(3, 1), lx(3, 1);
    for (int v = 0; v < 3; ++v) x.view().row(v)[0] = static_cast<float>(v + 1); // 1, 2, 3
    ref::sparse_dense_product(path, x.view(), lx.view());
    CHECK(lx.view().row(0)[0] == doctest::Approx(2 * s));
    CHECK(lx.view().row(1)[0] == doctest::Approx(4 * s));
    CHECK(lx.view().row(2)[0] == doctest::Approx(2 * s));

    // K = 3, one channel, weights 1, 10, 100, bias 0.5: out = 0.5 + T0 + 10 T1 + 100 T2, T2 = 2 L~ T1 - T0.
    const float w[3] = {1.0f, 10.0f, 100.0f}, bias = 0.5f;
    GraphFeatureBuffer out(3, 1);
    ref::chebyshev_conv(path, x.view(), w, &bias, 3, 1, false, out.view());
    const double t1[3] = {2 * s, 4 * s, 2 * s};
    const double lt1[3] = {s * t1[1], s * (t1[0] + t1[2]), s * t1[1]};
    for (int v = 0; v < 3; ++v) {
        const double t2 = 2 * lt1[v] - (v + 1);
        CHECK(out.view().row(v)[0] == doctest::Approx(0.5 + (v + 1) + 10 * t1[v] + 100 * t2));
    }
    // ELU: negative outputs become exp(x) - 1, positive ones stay.
    const float minus = -1000.0f;
    ref::chebyshev_conv(path, x.view(), w, &minus, 1, 1, true, out.view());
    CHECK(out.view().row(0)[0] == doctest::Approx(std::expm1(1.0 - 1000.0)));
    const float plus = 1000.0f;
    ref::chebyshev_conv(path, x.view(), w, &plus, 1, 1, true, out.view());
    CHECK(out.view().row(2)[0] == doctest::Approx(1003.0));
}

TEST_CASE("sparse x dense (spmm_csr): SIMD matches reference on odd widths") {
    unsigned seed = 1;
    for (int channels : {1, 3, 7, 16, 17, 33, 64, 65, 100})
        for (auto [rows, cols] : {std::pair<int, int>{1, 1}, {7, 3}, {42, 12}, {162, 42}, {100, 100}}) {
            CAPTURE(channels); CAPTURE(rows); CAPTURE(cols);
            check_sparse_product(rows, cols, channels, seed);
            seed += 5;
        }
}

TEST_CASE("Chebyshev conv: SIMD matches reference for K = 1, 2, 3, 6 on odd widths") {
    unsigned seed = 1000;
    for (int order : {1, 2, 3, 6})
        for (int cin : {1, 3, 7, 17, 33})
            for (int cout : {1, 3, 6, 17, 33, 64})
                for (int vertices : {1, 5, 42}) {
                    CAPTURE(order); CAPTURE(cin); CAPTURE(cout); CAPTURE(vertices);
                    check_chebyshev(vertices, order, cin, cout, seed % 2 == 0, seed);
                    seed += 7;
                }
}

TEST_CASE("graph kernels give identical results with 1 and 2 threads") {
    const SparseMatrix laplacian = random_sparse(642, 642, 7, 77);
    GraphFeatureBuffer x(642, 32);
    fill_random(x.view(), 78);
    const auto w = test::random_floats(6 * 32 * 17, 79);
    const auto bias = test::random_floats(17, 80);
    const PackedChebConv packed = pack_cheb_conv(w.data(), bias.data(), 6, 32, 17, true);
    AlignedFloats scratch = make_aligned_floats(chebyshev_scratch_floats(6, 642, 32));
    for (const KernelSet* ks : all_kernel_sets()) {
        CAPTURE(std::string(ks->isa));
        GraphFeatureBuffer one(642, 17), two(642, 17);
        ks->chebyshev_conv(laplacian, x.view(), packed, scratch.get(), one.view(), 1);
        ks->chebyshev_conv(laplacian, x.view(), packed, scratch.get(), two.view(), 2);
        CHECK(identical(one.view(), two.view()));
        GraphFeatureBuffer up_one(642, 32), up_two(642, 32);
        ks->spmm_csr(laplacian, x.view(), up_one.view(), 1);
        ks->spmm_csr(laplacian, x.view(), up_two.view(), 2);
        CHECK(identical(up_one.view(), up_two.view()));
    }
}
