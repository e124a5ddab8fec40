// facet benchmarks: the random inputs the kernel cases share (bench_kernels.cpp, bench_mtcnn.cpp).
#pragma once
#include <facet/kernels/int8_layout.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace facet::bench {

// Random values in the real channels of the interior; the ring and padded lanes stay zero, as
// every kernel requires of its input.
inline void fill_random(const FeatureMap& m, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int y = 0; y < m.h; ++y)
        for (int x = 0; x < m.w; ++x)
            for (int c = 0; c < m.c; ++c) m.at(y, x)[c] = dist(rng);
}

// int8: random bytes and weights, activations quantised at zero point 128 (what the weights do
// not change the time of).
constexpr QuantParams kInt8Activation{0.05f, 128};

inline void fill_random_bytes(const QuantizedMap& m, unsigned seed) {
    std::mt19937 rng(seed);
    for (int y = 0; y < m.h; ++y)
        for (int x = 0; x < m.w; ++x)
            for (int c = 0; c < m.c; ++c) m.at(y, x)[c] = static_cast<std::uint8_t>(rng() % 256);
}

inline std::vector<std::int8_t> random_int8(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::int8_t> v(n);
    for (auto& x : v) x = static_cast<std::int8_t>(static_cast<int>(rng() % 256) - 128);
    return v;
}

} // namespace facet::bench
