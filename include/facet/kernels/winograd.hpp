// facet: 3 x 3 stride-1 convolution by Winograd's minimal filtering F(m x m, 3 x 3), xsimd.
//
// Why: the dense 3x3 convs are 60% of RetinaFace's multiply-adds, and the direct kernel already
// runs them at the core's FMA peak. F(4x4, 3x3) computes a 4 x 4 output tile from a 6 x 6 input
// tile with 36 multiplies per (input, output) channel pair instead of 144: 4x fewer, paid for with
// cheap additions in the input and output transforms (Lavin & Gray, 2015). F(3x3, 3x3) (25 for 81)
// is for small fixed outputs that 4 x 4 tiles cover badly: MTCNN's R-Net conv2 makes 9 x 9 from
// every crop, where F(4x4) computes 12 x 12 (winograd_tile_for chooses, at load).
//
//   U = G g G^T      per (cin, cout), n x n (n = m + 2), computed once at load (pack_winograd)
//   V = B^T d B      per input tile and input channel
//   M = sum_ci U V   per position of the n x n tile: n^2 small GEMMs [tiles x cin] x [cin x cout]
//   Y = A^T M A      per output tile and output channel, then bias and activation
//
// Tiles are processed in blocks small enough for their V and M to stay in L2; the GEMM uses the
// same register tile as the direct kernel (6 rows x up to 4 vectors). Tiles at the bottom and
// right edges read zeros past the map's ring and store only the outputs inside the map.
// F(4x4, 3x3) loses a little precision to its transform constants (up to 8): its float32 error is
// about 8x the direct kernel's, under 1e-5 of the output's largest magnitude with 64 input channels
// (tests/test_kernels.cpp); RetinaFace's outputs stay within the golden tolerances. F(3x3, 3x3)'s
// constants are at most 4.
#pragma once
#include <algorithm>

#include "conv_nhwc.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

namespace winograd {

constexpr int kTilesPerBlock = 12; // two 6-row GEMM tiles; V and M of a block stay in L2

// F(4x4, 3x3): points 0, +-1, +-2, infinity (G: kWinogradG43).
struct F43 {
    static constexpr int kTile = 4, kInputTile = 6;

    // d -> B^T d for one column (or row) of 6 vectors.
    template <class B>
    static void input_1d(const B (&d)[6], B (&r)[6]) {
        const B four(4.0f), five(5.0f), two(2.0f);
        r[0] = xsimd::fma(four, d[0], xsimd::fnma(five, d[2], d[4]));
        r[1] = xsimd::fnma(four, d[1] + d[2], d[3] + d[4]);
        r[2] = xsimd::fma(four, d[1] - d[2], d[4] - d[3]);
        r[3] = xsimd::fma(two, d[3] - d[1], d[4] - d[2]);
        r[4] = xsimd::fma(two, d[1] - d[3], d[4] - d[2]);
        r[5] = xsimd::fma(four, d[1], xsimd::fnma(five, d[3], d[5]));
    }

    // m -> A^T m for one column (or row) of 6 vectors.
    template <class B>
    static void output_1d(const B (&m)[6], B (&o)[4]) {
        const B a = m[1] + m[2], b = m[1] - m[2], c = m[3] + m[4], d = m[3] - m[4];
        o[0] = m[0] + a + c;
        o[1] = xsimd::fma(B(2.0f), d, b);
        o[2] = xsimd::fma(B(4.0f), c, a);
        o[3] = xsimd::fma(B(8.0f), d, b) + m[5];
    }
};

// F(3x3, 3x3): points 0, +-1, 2, infinity (G: kWinogradG33).
//   B^T = [2 -1 -2  1 0;  0 2 1 -1 0;  0 -2 3 -1 0;  0 -1 0 1 0;  0 2 -1 -2 1]
//   A^T = [1 1 1 1 0;  0 1 -1 2 0;  0 1 1 4 1]
struct F33 {
    static constexpr int kTile = 3, kInputTile = 5;

    template <class B>
    static void input_1d(const B (&d)[5], B (&r)[5]) {
        const B two(2.0f), d23 = d[2] - d[3];
        r[0] = xsimd::fma(two, d[0] - d[2], d[3] - d[1]);
        r[1] = xsimd::fma(two, d[1], d23);
        r[2] = xsimd::fma(two, d[2] - d[1], d23);
        r[3] = d[3] - d[1];
        r[4] = xsimd::fma(two, d[1] - d[3], d[4] - d[2]);
    }

    template <class B>
    static void output_1d(const B (&m)[5], B (&o)[3]) {
        const B a = m[1] + m[2];
        o[0] = m[0] + a + m[3];
        o[1] = xsimd::fma(B(2.0f), m[3], m[1] - m[2]);
        o[2] = xsimd::fma(B(4.0f), m[3], a) + m[4];
    }
};

template <class T>
constexpr int kPositions = winograd_positions(T::kTile); // conv_weights.hpp's, which packs U to match

// V = B^T d B for one channel vector of the tile whose output corner is (oy, ox): calls
// store(pos, vector) for each of the n x n positions.
template <class Arch, class T, class Store>
inline void transform_input_tile(const FeatureMap& in, int oy, int ox, int channel, Store&& store) {
    using B = Batch<Arch>;
    constexpr int n = T::kInputTile;
    const bool inside = oy + n - 1 <= in.h + 1 && ox + n - 1 <= in.w + 1;
    B d[n][n];
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) {
            const int y = oy - 1 + i, x = ox - 1 + j; // >= -1: the ring
            d[i][j] = inside || (y <= in.h && x <= in.w) ? B::load_unaligned(in.at(y, x) + channel) : B(0.0f);
        }
    B cols[n][n]; // cols[i] = (B^T d)[i][:]
    for (int j = 0; j < n; ++j) {
        B col[n], r[n];
        for (int i = 0; i < n; ++i) col[i] = d[i][j];
        T::input_1d(col, r);
        for (int i = 0; i < n; ++i) cols[i][j] = r[i];
    }
    for (int i = 0; i < n; ++i) {
        B r[n];
        T::input_1d(cols[i], r);
        for (int j = 0; j < n; ++j) store(i * n + j, r[j]);
    }
}

// Y = A^T M A for one output channel vector of one tile, then bias, activation, store.
template <class Arch, class T>
inline void transform_output_tile(const float* m, std::ptrdiff_t pos_stride, const PackedConv& w, int channel, int oy,
                                  int ox, const FeatureMap& out) {
    using B = Batch<Arch>;
    constexpr int n = T::kInputTile, t = T::kTile;
    B rows[n][t]; // rows[i] = (M A)[i][:]
    for (int i = 0; i < n; ++i) {
        B row[n], o[t];
        for (int j = 0; j < n; ++j) row[j] = B::load_aligned(m + (i * n + j) * pos_stride + channel);
        T::output_1d(row, o);
        for (int j = 0; j < t; ++j) rows[i][j] = o[j];
    }
    const B bias = B::load_aligned(w.bias.get() + channel);
    for (int j = 0; j < t; ++j) {
        if (ox + j >= out.w) break;
        B col[n], o[t];
        for (int i = 0; i < n; ++i) col[i] = rows[i][j];
        T::output_1d(col, o);
        for (int i = 0; i < t && oy + i < out.h; ++i)
            activate<Arch>(o[i] + bias, w.epilogue, channel).store_unaligned(out.at(oy + i, ox + j) + channel);
    }
}

// M[pos][rows][vec0 .. vec0 + V) = V[pos][rows][:cin] x U[pos][:cin][...] for R rows.
template <class Arch, int R, int V>
inline void gemm_tile(const float* v, const float* u, float* m, int cin, int cout_pad, std::ptrdiff_t row_stride) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    B acc[R][V];
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < V; ++k) acc[r][k] = B(0.0f);
    for (int ci = 0; ci < cin; ++ci, u += cout_pad) {
        B wv[V];
        for (int k = 0; k < V; ++k) wv[k] = B::load_aligned(u + k * N);
        for (int r = 0; r < R; ++r) {
            const B x(v[r * row_stride + ci]);
            for (int k = 0; k < V; ++k) acc[r][k] = xsimd::fma(x, wv[k], acc[r][k]);
        }
    }
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < V; ++k) acc[r][k].store_aligned(m + r * cout_pad + k * N);
}

// One position's GEMM over `rows` tiles: full 6-row tiles, then the rest (1 to 5 rows) as one
// tile. The rest is not run a row at a time: small maps have few tiles (MTCNN's O-Net conv3 has 4,
// R-Net's conv2 9), and one row's accumulators form V dependent chains of cin FMAs, latency-bound.
template <class Arch, int V>
inline void gemm_position(const float* v, const float* u, float* m, int rows, int cin, int cin_stride, int cout_pad, int vec0) {
    constexpr int N = Batch<Arch>::size;
    for_each_pixel_tile(rows, [&](auto tile_rows, int r) {
        gemm_tile<Arch, tile_rows, V>(v + r * cin_stride, u + vec0 * N, m + r * cout_pad + vec0 * N, cin, cout_pad, cin_stride);
    });
}

// The block loop of both GEMM precisions and both tile sizes (T: F43 or F33): per block of
// tiles, the input transform into V (elements of type VElem, `cin_stride` a tile: store_v(dst,
// vector) writes one channel vector's transformed values), the GEMMs (gemm(v_pos, pos, m_pos,
// tiles) fills M of one position from V of that position), the output transform. in.cstride must
// be a whole number of vectors.
template <class Arch, class T, class VElem, class StoreV, class Gemm>
void winograd_blocks(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads, StoreV&& store_v,
                     Gemm&& gemm) {
    constexpr int N = Batch<Arch>::size, kTile = T::kTile, kPos = kPositions<T>;
    const int tiles_x = (out.w + kTile - 1) / kTile, tiles_y = (out.h + kTile - 1) / kTile;
    const int tiles = tiles_x * tiles_y, blocks = (tiles + kTilesPerBlock - 1) / kTilesPerBlock;
    const int cin_stride = in.cstride, cout_pad = w.cout_pad;
    // Per-thread scratch, kept across calls so a frame allocates nothing once warm; M starts on a
    // vector boundary.
    const std::size_t v_elems = static_cast<std::size_t>(kPos) * kTilesPerBlock * cin_stride;
    const std::size_t v_floats = static_cast<std::size_t>(round_up(static_cast<int>(v_elems * sizeof(VElem) / sizeof(float)), N));
    const std::size_t m_floats = static_cast<std::size_t>(kPos) * kTilesPerBlock * cout_pad;
    parallel_for<Arch>(0, blocks, threads, [&](int block) {
        static thread_local AlignedFloats scratch;
        static thread_local std::size_t capacity = 0;
        if (capacity < v_floats + m_floats) {
            scratch = make_aligned_floats(v_floats + m_floats);
            capacity = v_floats + m_floats;
        }
        VElem* v = reinterpret_cast<VElem*>(scratch.get());
        float* m = scratch.get() + v_floats;
        const int first = block * kTilesPerBlock, count = std::min(kTilesPerBlock, tiles - first);
        const std::ptrdiff_t v_pos_stride = static_cast<std::ptrdiff_t>(kTilesPerBlock) * cin_stride;
        const std::ptrdiff_t m_pos_stride = static_cast<std::ptrdiff_t>(kTilesPerBlock) * cout_pad;
        for (int t = 0; t < count; ++t) {
            const int tile = first + t, oy = tile / tiles_x * kTile, ox = tile % tiles_x * kTile;
            for (int c = 0; c < in.c; c += N)
                transform_input_tile<Arch, T>(in, oy, ox, c, [&](int pos, const Batch<Arch>& r) {
                    store_v(v + pos * v_pos_stride + t * cin_stride + c, r);
                });
        }
        for (int pos = 0; pos < kPos; ++pos) gemm(v + pos * v_pos_stride, pos, m + pos * m_pos_stride, count);
        for (int t = 0; t < count; ++t) {
            const int tile = first + t, oy = tile / tiles_x * kTile, ox = tile % tiles_x * kTile;
            for (int c = 0; c < cout_pad; c += N) transform_output_tile<Arch, T>(m + t * cout_pad, m_pos_stride, w, c, oy, ox, out);
        }
    });
}

} // namespace winograd

// out = epilogue(conv3x3_stride1_pad1(in) + bias) with w.winograd (see pack_winograd), F(4x4) or
// F(3x3) as w.winograd_tile says.
template <class Arch>
void conv3x3_s1_winograd_nhwc(const FeatureMap& in, const PackedConv& w, const FeatureMap& out, int threads) {
    using namespace winograd;
    constexpr int N = Batch<Arch>::size;
    // V rows are vector-stored per input channel vector: an input whose channel stride is not a
    // whole number of vectors (an image with 3 interleaved channels) goes to the direct kernel.
    if (in.cstride % N != 0) return conv_nhwc<Arch, 3, 1>(in, w, out, threads);
    const int cin_stride = in.cstride, cout_pad = w.cout_pad, vectors = cout_pad / N;
    const auto store_v = [](float* dst, const Batch<Arch>& r) { r.store_aligned(dst); };
    const auto gemm = [&](const float* vp, int pos, float* mp, int count) {
        const float* u = w.winograd.get() + static_cast<std::ptrdiff_t>(pos) * w.cin * cout_pad;
        for_each_vector_block<Arch>(vectors, [&](auto width, int vec) {
            gemm_position<Arch, width>(vp, u, mp, count, w.cin, cin_stride, cout_pad, vec);
        });
    };
    if (w.winograd_tile == 3) winograd_blocks<Arch, F33, float>(in, w, out, threads, store_v, gemm);
    else winograd_blocks<Arch, F43, float>(in, w, out, threads, store_v, gemm);
}

} // namespace
} // namespace facet::simd
