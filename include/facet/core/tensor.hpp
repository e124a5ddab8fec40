// facet: aligned storage and the feature-map layout every kernel works on.
//
// Layout: NHWC with a padded channel stride and a one-pixel zero ring.
//  - Channels are innermost so a SIMD vector holds channels of one pixel: depthwise, pointwise and
//    dense convs all vectorise over output channels, any stride works without shuffles, and the
//    heads' outputs come out in the (row, col, anchor) order the decoder reads.
//  - The channel stride is rounded up to kChannelAlign (16 floats = one AVX-512 vector = 64 bytes),
//    a multiple of every vector width we target, so kernels never need channel tail loops. The
//    padding lanes hold zeros (their weights and biases are zero).
//  - A ring of one zero pixel around the map is the padding of every 3x3 conv, so the inner loops
//    never test borders. Kernels write only the interior (all cstride lanes of it), so the ring
//    stays zero for as long as the buffer keeps its shape.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "error.hpp"

namespace facet {

constexpr int kChannelAlign = 16;      // floats; 64 bytes
constexpr std::size_t kByteAlign = 64; // cache line and AVX-512 vector

constexpr int round_up(int v, int m) { return (v + m - 1) / m * m; }

struct AlignedDeleter {
    void operator()(float* p) const noexcept { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedDeleter>;

// Zero-initialised, 64-byte aligned floats. Throws std::bad_alloc like new.
inline AlignedFloats make_aligned_floats(std::size_t count) {
    const std::size_t bytes = (count * sizeof(float) + kByteAlign - 1) / kByteAlign * kByteAlign;
    void* p = std::aligned_alloc(kByteAlign, bytes == 0 ? kByteAlign : bytes);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes == 0 ? kByteAlign : bytes);
    return AlignedFloats(static_cast<float*>(p));
}

// The height x width pixels of `map` (FeatureMap, QuantizedMap) from (y, x) on, sharing its storage.
template <class Map>
Map pixels_of(const Map& map, int y, int x, int height, int width) {
    Map s = map;
    s.data = map.at(y, x);
    s.h = height;
    s.w = width;
    return s;
}

// A non-owning view of one feature map (batch 1). `data` points at pixel (0, 0), channel 0;
// pixels (y, x) for y in [-1, h] and x in [-1, w] are addressable (the zero ring).
struct FeatureMap {
    float* data = nullptr;
    int h = 0, w = 0, c = 0;     // logical size
    int cstride = 0;             // floats between neighbouring pixels (>= c, multiple of 16 for outputs)
    std::ptrdiff_t rstride = 0;  // floats between neighbouring rows

    float* at(int y, int x) const { return data + y * rstride + static_cast<std::ptrdiff_t>(x) * cstride; }

    // The channels [first, first + count) of this map, sharing its pixels: lets a conv write its
    // output straight into a slice of a concatenation.
    FeatureMap channels(int first, int count) const {
        FeatureMap s = *this;
        s.data = data + first;
        s.c = count;
        return s;
    }

    // The h x w pixels from (y, x) on, sharing this map's storage: the view's ring is whatever
    // surrounds it here (this map's pixels, or its ring). Lets a padded kernel run as an unpadded
    // or asymmetrically padded one.
    FeatureMap pixels(int y, int x, int height, int width) const { return pixels_of(*this, y, x, height, width); }
};

// The elements a padded map (FeatureMap, QuantizedMap) of h x w pixels, cstride lanes each,
// takes with its one-pixel ring.
inline std::size_t padded_map_size(int h, int w, int cstride) {
    return static_cast<std::size_t>(h + 2) * static_cast<std::size_t>(w + 2) * static_cast<std::size_t>(cstride);
}

// Shapes `map` as h x w x c, cstride lanes a pixel, over `storage` (padded_map_size elements,
// ring first): data points at pixel (0, 0).
template <class Map, class T>
void lay_out_padded_map(Map& map, T* storage, int h, int w, int c, int cstride) {
    map.h = h;
    map.w = w;
    map.c = c;
    map.cstride = cstride;
    map.rstride = static_cast<std::ptrdiff_t>(w + 2) * cstride;
    map.data = storage + map.rstride + cstride;
}

// Sets every lane of a padded map's ring (rows -1 and h, columns -1 and w) to `value`.
template <class Map, class T>
void fill_ring(const Map& map, T value) {
    const auto cstride = static_cast<std::size_t>(map.cstride);
    std::fill_n(map.at(-1, -1), static_cast<std::size_t>(map.rstride), value);
    std::fill_n(map.at(map.h, -1), static_cast<std::size_t>(map.rstride), value);
    for (int y = 0; y < map.h; ++y) {
        std::fill_n(map.at(y, -1), cstride, value);
        std::fill_n(map.at(y, map.w), cstride, value);
    }
}

// Owns the storage of one FeatureMap, ring included.
class FeatureBuffer {
public:
    FeatureBuffer() = default;
    FeatureBuffer(int h, int w, int c) { resize(h, w, c); }

    // Re-shapes to h x w x c with the channel stride rounded up to `channel_align` floats
    // (kChannelAlign for anything a SIMD kernel writes; an input image may use 1). Reallocates,
    // zeroed, only when the map needs more room than the buffer has; otherwise, if the shape
    // changed, only the ring is zeroed: the producer overwrites every interior lane.
    void resize(int h, int w, int c, int channel_align = kChannelAlign) {
        const int cstride = round_up(c, channel_align);
        const std::size_t need = padded_map_size(h, w, cstride);
        const bool reshaped = h != map_.h || w != map_.w || cstride != map_.cstride;
        if (need > capacity_) {
            storage_ = make_aligned_floats(need);
            capacity_ = need;
        }
        lay_out_padded_map(map_, storage_.get(), h, w, c, cstride);
        if (reshaped && ring_read_) fill_ring(map_, 0.0f);
    }

    // For a map no reader reads the ring of (unpadded convs and max-pools read only its pixels:
    // MTCNN's), resize may leave the ring as it is: then it holds whatever earlier shapes left
    // there. MTCNN re-shapes its maps several times a crop, and refilling their rings was ~3% of
    // its frame.
    void set_ring_read(bool read) { ring_read_ = read; }

    const FeatureMap& map() const { return map_; }
    std::size_t capacity_floats() const { return capacity_; }

    // Makes room for `floats` (the same count resize computes), so that no later resize up to
    // that size allocates. Growing loses the contents; the shape stays, its ring zero.
    void reserve(std::size_t floats) {
        if (floats <= capacity_) return;
        storage_ = make_aligned_floats(floats);
        capacity_ = floats;
        map_.data = storage_.get() + map_.rstride + map_.cstride;
    }

private:
    AlignedFloats storage_;
    std::size_t capacity_ = 0;
    FeatureMap map_;
    bool ring_read_ = true;
};

} // namespace facet
