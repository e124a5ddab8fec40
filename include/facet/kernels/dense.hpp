// facet: dense (fully connected) layer over a batch of inputs, reading NHWC maps directly, xsimd.
//
// A batch of n inputs is one map of n * in_h rows: input b is rows [b * in_h, (b + 1) * in_h).
// The output is an n x 1 map with cout channels, so one dense layer's output is the next one's
// input (in_h = in_w = 1). The cascade's R-Net and O-Net run on every crop of a frame at once this
// way: a dense layer is a matrix-vector product bound by streaming its weights (1.2 MB for O-Net's
// first), and a batch reuses each loaded weight vector for several inputs.
//
// Register tile: P inputs x V vectors of output channels, as in conv_nhwc.hpp. Per input value,
// V weight vectors are loaded once and the P inputs' values are broadcast into them.
#pragma once
#include "dense_weights.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

template <class Arch, int P, int V>
inline void dense_tile(const FeatureMap& in, const PackedDense& w, int item0, int vec0, const FeatureMap& out) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    B acc[P][V];
    for (int v = 0; v < V; ++v) {
        const B b = B::load_aligned(w.bias.get() + (vec0 + v) * N);
        for (int p = 0; p < P; ++p) acc[p][v] = b;
    }
    const float* wt = w.weights.get() + vec0 * N;
    for (int y = 0; y < w.in_h; ++y) {
        for (int x = 0; x < w.in_w; ++x) {
            const float* src[P];
            for (int p = 0; p < P; ++p) src[p] = in.at((item0 + p) * w.in_h + y, x);
            for (int ci = 0; ci < w.cin; ++ci, wt += w.cout_pad) {
                B wv[V];
                for (int v = 0; v < V; ++v) wv[v] = B::load_aligned(wt + v * N);
                for (int p = 0; p < P; ++p) {
                    const B value(src[p][ci]);
                    for (int v = 0; v < V; ++v) acc[p][v] = xsimd::fma(value, wv[v], acc[p][v]);
                }
            }
        }
    }
    for (int p = 0; p < P; ++p) {
        float* dst = out.at(item0 + p, 0) + vec0 * N;
        for (int v = 0; v < V; ++v) activate<Arch>(acc[p][v], w.epilogue, (vec0 + v) * N).store_unaligned(dst + v * N);
    }
}

// Inputs [item0, item0 + P), every output channel vector, in register-tile blocks.
template <class Arch, int P>
inline void dense_items(const FeatureMap& in, const PackedDense& w, int item0, const FeatureMap& out) {
    for_each_vector_block<Arch>(w.cout_pad / Batch<Arch>::size,
                                [&](auto width, int v) { dense_tile<Arch, P, width>(in, w, item0, v, out); });
}

// out = epilogue(W x + bias) for every input of the batch. in: (n * w.in_h) x w.in_w x w.cin;
// out: n x 1 x w.cout.
template <class Arch>
void dense_nhwc(const FeatureMap& in, const PackedDense& w, const FeatureMap& out, int threads) {
    constexpr int P = kTilePixels;
    const int items = out.h;
    const int full_tiles = items / P;
    parallel_for<Arch>(0, full_tiles, threads, [&](int t) { dense_items<Arch, P>(in, w, t * P, out); });
    for (int item = full_tiles * P; item < items; ++item) dense_items<Arch, 1>(in, w, item, out);
}

} // namespace
} // namespace facet::simd
