// facet: graph kernels on vertex features (graph_layout.hpp), xsimd: the CSR sparse x dense
// product (mesh up-sampling U X) and the Chebyshev graph convolution (MODELS.md section 4).
//
// Sparse products vectorise over feature columns: for one output row, a block of column vectors
// stays in registers while the row's non-zeros stream past, each value broadcast and FMA'd with
// the matching aligned run of its neighbour's row. Rows are independent, so threads split them and
// results do not depend on the thread count.
//
// The Chebyshev convolution runs the recurrence T_1 = L~ X, T_k = 2 L~ T_(k-1) - T_(k-2) with
// that product (the "2 A x - z" fused into its store), then one dense pass computes
// act(sum_k T_k W_k + b) with the conv kernels' register tile: kTilePixels vertices x
// kTileVectors output vectors, each T value broadcast into a weight vector loaded once per tile.
#pragma once
#include "graph_layout.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// Column vectors a sparse row block keeps in registers: 4 covers a 64-wide row on AVX-512 in one
// pass over the row's non-zeros; wider rows take several passes, which re-read the few non-zeros
// from L1.
constexpr int kSparseBlockVectors = 4;

// What a sparse row block stores: A x, or 2 A x - z (a Chebyshev recurrence step).
enum class SparseStore { product, chebyshev_step };

// Columns [col0, col0 + V * N) of row r of the result.
template <class Arch, int V, SparseStore Store>
inline void sparse_row_block(const SparseMatrix& a, const GraphFeatures& x, const GraphFeatures& z, int r, int col0,
                             const GraphFeatures& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    B acc[V];
    for (int v = 0; v < V; ++v) acc[v] = B(0.0f);
    for (std::int32_t j = a.row_begin[r]; j < a.row_begin[r + 1]; ++j) {
        const B value(a.values[j]);
        const float* src = x.row(a.columns[j]) + col0;
        for (int v = 0; v < V; ++v) acc[v] = xsimd::fma(value, B::load_aligned(src + v * N), acc[v]);
    }
    float* dst = out.row(r) + col0;
    for (int v = 0; v < V; ++v) {
        if constexpr (Store == SparseStore::chebyshev_step)
            acc[v] = xsimd::fms(B(2.0f), acc[v], B::load_aligned(z.row(r) + col0 + v * N));
        acc[v].store_aligned(dst + v * N);
    }
}

// out = A x, or 2 A x - z; every lane of every row of `out` is written. x, z and out share one
// stride (padded lanes of x are zero, so those of out are too).
template <class Arch, SparseStore Store>
inline void sparse_product(const SparseMatrix& a, const GraphFeatures& x, const GraphFeatures& z, const GraphFeatures& out,
                           int threads) {
    constexpr int N = Batch<Arch>::size;
    constexpr int Vb = kSparseBlockVectors;
    const int vectors = out.stride / N;
    parallel_for<Arch>(0, a.rows, threads, [&](int r) {
        int v = 0;
        for (; v + Vb <= vectors; v += Vb) sparse_row_block<Arch, Vb, Store>(a, x, z, r, v * N, out);
        // The rest in one pass too: 1 to Vb - 1 vectors.
        switch (vectors - v) {
        case 3: sparse_row_block<Arch, 3, Store>(a, x, z, r, v * N, out); break;
        case 2: sparse_row_block<Arch, 2, Store>(a, x, z, r, v * N, out); break;
        case 1: sparse_row_block<Arch, 1, Store>(a, x, z, r, v * N, out); break;
        default: break;
        }
    });
}

// out = A x (A is [out.vertices, x.vertices]): mesh up-sampling, U X.
template <class Arch>
void spmm_csr(const SparseMatrix& a, const GraphFeatures& x, const GraphFeatures& out, int threads) {
    sparse_product<Arch, SparseStore::product>(a, x, x, out, threads);
}

// The terms T_0 .. T_(K-1) of one Chebyshev convolution: T_0 is the input, the others live in the
// caller's scratch, one padded [vertices, cin] matrix after another.
struct ChebyshevTerms {
    const GraphFeatures& x;
    float* scratch;

    GraphFeatures operator[](int k) const {
        if (k == 0) return x;
        return {scratch + static_cast<std::ptrdiff_t>(k - 1) * x.vertices * x.stride, x.vertices, x.channels, x.stride};
    }
};

// ELU (alpha = 1): x for x > 0, exp(x) - 1 otherwise (expm1 keeps small negatives exact).
template <class Arch>
inline Batch<Arch> elu(const Batch<Arch>& x) {
    using B = Batch<Arch>;
    return xsimd::select(x > B(0.0f), x, xsimd::expm1(x));
}

// Output rows [row0, row0 + P), vectors [vec0, vec0 + V): act(sum_k T_k W_k + b).
template <class Arch, int P, int V>
inline void chebyshev_combine_tile(const ChebyshevTerms& terms, const PackedChebConv& w, int row0, int vec0,
                                   const GraphFeatures& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    B acc[P][V];
    for (int v = 0; v < V; ++v) {
        const B b = B::load_aligned(w.bias.get() + (vec0 + v) * N);
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    const float* wt = w.weights.get() + vec0 * N;
    for (int k = 0; k < w.order; ++k) {
        const float* src = terms[k].row(row0);
        const int stride = terms[k].stride;
        for (int i = 0; i < w.cin; ++i, wt += w.cout_pad) {
            B wv[V];
            for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wt + v * N);
            for (int p = 0; p < P; ++p) {
                const B t(src[p * stride + i]);
                for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(t, wv[v], acc[p][v]);
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        float* dst = out.row(row0 + p) + vec0 * N;
        for (int v = 0; v < V; ++v) (w.elu ? elu<Arch>(acc[p][v]) : acc[p][v]).store_aligned(dst + v * N);
    }
}

// Rows [row0, row0 + P), all output vectors, in register-tile blocks.
template <class Arch, int P>
inline void chebyshev_combine_rows(const ChebyshevTerms& terms, const PackedChebConv& w, int row0, const GraphFeatures& out) {
    for_each_vector_block<Arch>(w.cout_pad / Batch<Arch>::size,
                                [&](auto width, int v) { chebyshev_combine_tile<Arch, P, width>(terms, w, row0, v, out); });
}

// out = act(sum_k T_k(L~) x W_k + b) for the scaled Laplacian L~ [V, V] (unused when K = 1: then
// this is a dense layer, x W_0 + b, on each row). x is [V, w.cin], out [V, w.cout]; `scratch` holds
// chebyshev_scratch_floats(K, V, cin) floats, 64-byte aligned.
template <class Arch>
void chebyshev_conv(const SparseMatrix& laplacian, const GraphFeatures& x, const PackedChebConv& w, float* scratch,
                    const GraphFeatures& out, int threads) {
    const ChebyshevTerms terms{x, scratch};
    for (int k = 1; k < w.order; ++k) {
        if (k == 1) sparse_product<Arch, SparseStore::product>(laplacian, x, x, terms[1], threads);
        else sparse_product<Arch, SparseStore::chebyshev_step>(laplacian, terms[k - 1], terms[k - 2], terms[k], threads);
    }
    constexpr int P = kTilePixels;
    const int blocks = (x.vertices + P - 1) / P;
    parallel_for<Arch>(0, blocks, threads, [&](int b) {
        const int row0 = b * P;
        if (row0 + P <= x.vertices) {
            chebyshev_combine_rows<Arch, P>(terms, w, row0, out);
            return;
        }
        for (int r = row0; r < x.vertices; ++r) chebyshev_combine_rows<Arch, 1>(terms, w, r, out);
    });
}

} // namespace
} // namespace facet::simd
