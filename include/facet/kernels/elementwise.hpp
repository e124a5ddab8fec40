// facet: elementwise kernels on NHWC feature maps, xsimd: an activation on its own, the sum and
// product of two maps, and softmax over each pixel's channels.
//
// Each kernel writes lanes [0, round_up(c, 16)) of every output pixel, the padding lanes as zeros
// (lane_mask.hpp): the output may be a channel slice of a wider map, and an input's padding lanes
// may hold another slice's channels.
#pragma once
#include <algorithm>
#include <numeric>

#include "lane_mask.hpp"
#include "map_activation.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// out = activation(in), pixel by pixel; out may be in.
template <class Arch>
void activation_nhwc(const FeatureMap& in, const MapActivation& a, const FeatureMap& out, int threads) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const B low(a.low), high(a.high), one(1.0f);
    const int lanes = written_lanes(out.c);
    parallel_for<Arch>(0, out.h, threads, [&](int y) {
        for (int x = 0; x < out.w; ++x) {
            const float* src = in.at(y, x);
            float* dst = out.at(y, x);
            for (int ch = 0; ch < lanes; ch += N) {
                const B v = B::load_unaligned(src + ch);
                B r;
                switch (a.kind) {
                case MapActivation::Kind::clip: r = xsimd::min(xsimd::max(v, low), high); break;
                case MapActivation::Kind::sigmoid: r = one / (one + xsimd::exp(-v)); break;
                case MapActivation::Kind::epilogue: r = activate<Arch>(v, a.epilogue, ch); break;
                }
                keep_lanes<Arch>(r, out.c - ch).store_unaligned(dst + ch);
            }
        }
    });
}

// out = a (op) b, where b has a's size or is one pixel broadcast over a's; out may be a.
template <class Arch, class Op>
void binary_nhwc(const FeatureMap& a, const FeatureMap& b, const FeatureMap& out, int threads, Op op) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    const bool broadcast = b.h == 1 && b.w == 1;
    const int lanes = written_lanes(out.c);
    parallel_for<Arch>(0, out.h, threads, [&](int y) {
        for (int x = 0; x < out.w; ++x) {
            const float* pa = a.at(y, x);
            const float* pb = broadcast ? b.at(0, 0) : b.at(y, x);
            float* dst = out.at(y, x);
            for (int ch = 0; ch < lanes; ch += N)
                keep_lanes<Arch>(op(B::load_unaligned(pa + ch), B::load_unaligned(pb + ch)), out.c - ch).store_unaligned(dst + ch);
        }
    });
}

template <class Arch>
void add_nhwc(const FeatureMap& a, const FeatureMap& b, const FeatureMap& out, int threads) {
    binary_nhwc<Arch>(a, b, out, threads, [](const Batch<Arch>& x, const Batch<Arch>& y) { return x + y; });
}

template <class Arch>
void mul_nhwc(const FeatureMap& a, const FeatureMap& b, const FeatureMap& out, int threads) {
    binary_nhwc<Arch>(a, b, out, threads, [](const Batch<Arch>& x, const Batch<Arch>& y) { return x * y; });
}

// out(y, x, :) = softmax over the channels of in(y, x, :). The maximum is subtracted first, as
// every runtime does, so that large logits do not overflow exp.
template <class Arch>
void softmax_channels_nhwc(const FeatureMap& in, const FeatureMap& out, int threads) {
    using B = Batch<Arch>;
    constexpr int N = B::size;
    parallel_for<Arch>(0, out.h, threads, [&](int y) {
        for (int x = 0; x < out.w; ++x) {
            const float* src = in.at(y, x);
            float* dst = out.at(y, x);
            const B max_value(*std::max_element(src, src + out.c));
            B sum(0.0f);
            for (int ch = 0; ch < written_lanes(out.c); ch += N) {
                const B e = keep_lanes<Arch>(xsimd::exp(B::load_unaligned(src + ch) - max_value), out.c - ch);
                sum += e;
                e.store_unaligned(dst + ch);
            }
            // xsimd's hadd needs AVX-512DQ on AVX-512F builds: sum the lanes in memory instead.
            alignas(64) float lanes[N];
            sum.store_aligned(lanes);
            const B inverse(1.0f / std::accumulate(lanes, lanes + N, 0.0f));
            for (int ch = 0; ch < out.c; ch += N) (B::load_unaligned(dst + ch) * inverse).store_unaligned(dst + ch);
        }
    });
}

} // namespace
} // namespace facet::simd
