// facet: one row of an area resampling from a summed-area table, normalised, float or uint8 out
// (area_row_plan.hpp defines the values; ref::area_row in reference_mtcnn.hpp is the scalar
// reference, bit for bit).
//
// Per row, two passes. First the differences of the table's two rows over the region (the
// columns' sums over the windows' rows), as whole vectors; then, a chunk of values at a time, each
// window's sum as the difference of its two edge columns (scalar loads into an array), and from
// the array, vectors: the conversion to float, the divisions and the normalisation. Values run
// whole vectors over the plan's padding. Tried on AVX-512 and dropped (Zen 5,
// `area_rows/avx512/61x61->24x24`, one run): the four table entries of each value by the gather
// instruction, 2.3 us (xsimd 8.1's batch::gather, which inserts integer lanes one by one, 24 us);
// by scalar loads, 2.4-2.7 us; the differences first, then gathers from them, 2.3 us; this, 1.9 us.
// Filling a vector's lanes just before loading it (no chunk) was 1.4x slower on AVX-512 and 2.3x
// on AVX2: the load waits on the lanes' stores. Written scalar in the model (compiled for the
// program's baseline x86-64), MTCNN's resampling was 19-20% of its frame (perf), now ~12%.
#pragma once
#include <algorithm>
#include <cstdint>

#include "area_row_plan.hpp"
#include "conv_int8.hpp"
#include "simd.hpp"

namespace facet::simd {
namespace { // internal linkage in every translation unit: kernel_set.hpp says why

// Calls store(i, values i .. i + N) for each vector of the row's padded values; `columns` holds
// the first pass's p.entries differences.
template <class Arch, class Store>
[[gnu::always_inline]] inline void area_row_vectors(const std::uint32_t* top, const std::uint32_t* bottom, float rows,
                                                   const AreaRowPlan& p, std::uint32_t* columns, Store&& store) {
    using B = Batch<Arch>;
    using U = xsimd::batch<std::uint32_t, Arch>;
    using I = Int32s<Arch>;
    int j = 0;
    for (; j + static_cast<int>(U::size) <= p.entries; j += static_cast<int>(U::size))
        (U::load_unaligned(bottom + j) - U::load_unaligned(top + j)).store_unaligned(columns + j); // modulo 2^32
    for (; j < p.entries; ++j) columns[j] = bottom[j] - top[j];
    constexpr int kChunk = 4 * AreaRowPlan::kPad;
    const B rows_v(rows);
    alignas(64) std::uint32_t sums[kChunk];
    for (int begin = 0; begin < p.padded(); begin += kChunk) {
        const int end = std::min(begin + kChunk, p.padded()); // a multiple of kPad, so of the vector's lanes
        for (int i = begin; i < end; ++i) sums[i - begin] = columns[p.last[i]] - columns[p.first[i]];
        for (int i = begin; i < end; i += static_cast<int>(B::size)) {
            const U sum = U::load_aligned(sums + (i - begin));
            // float(sum) as the reference's conversion rounds it (xsimd 8.1 converts signed lanes
            // only): the high and low 16 bits are exact in float, so their sum is rounded once.
            const B high = xsimd::batch_cast<float>(xsimd::bitwise_cast<I>(sum >> 16));
            const B low = xsimd::batch_cast<float>(xsimd::bitwise_cast<I>(sum & U(0xFFFFu)));
            const B average = (high * B(65536.0f) + low) / rows_v / B::load_unaligned(p.width.data() + i);
            store(i, (average - B::load_unaligned(p.mean.data() + i)) * B::load_unaligned(p.scale.data() + i));
        }
    }
}

// out: p.padded() floats.
template <class Arch>
void area_row(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& p, std::uint32_t* columns,
              float* out) {
    area_row_vectors<Arch>(top, bottom, rows, p, columns, [&](int i, const Batch<Arch>& v) { v.store_unaligned(out + i); });
}

// out: p.padded() bytes, each value quantised by q.
template <class Arch>
void area_row_int8(const std::uint32_t* top, const std::uint32_t* bottom, float rows, const AreaRowPlan& p, std::uint32_t* columns,
                   QuantParams q, std::uint8_t* out) {
    const Batch<Arch> scale(q.scale);
    area_row_vectors<Arch>(top, bottom, rows, p, columns, [&](int i, const Batch<Arch>& v) { store_quantized<Arch>(v / scale, q, out + i); });
}

} // namespace
} // namespace facet::simd
