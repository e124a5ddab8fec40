// facet: images in memory, decoding (stb_image), PNG writing (stb_image_write) and resizing.
//
// stb is compiled into each translation unit that includes this header as static functions
// (STB_IMAGE_STATIC), so dropping include/ into a project needs no extra .c file and cannot
// clash with another copy of stb. Define FACET_USE_EXTERNAL_STB if your program already builds
// the stb implementations itself.
#pragma once
#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../kernels/area_row_plan.hpp"
#include "files.hpp"
#ifdef FACET_WITH_LIBJPEG
#include "jpeg_libjpeg.hpp"
#endif

namespace facet::detail {

// stb_image sizes some buffers from what a file's data turns out to hold rather than from its
// header: a PNG's compressed data inflates into a buffer that doubles until the stream ends, up to
// 4 GB, whatever size the header claims (a 100 KB PNG of one pixel can inflate to gigabytes).
// decode_image bounds every block stb allocates by what the header's size and the file's length
// can need (StbBlockLimit); a larger request fails, stb reports "outofmem", and decode_image says
// why. A program that builds stb itself (FACET_USE_EXTERNAL_STB) does not get this bound.
inline thread_local std::size_t stb_block_limit = SIZE_MAX;
inline thread_local bool stb_block_refused = false;

inline void* stb_malloc(std::size_t n) {
    if (n > stb_block_limit) return stb_block_refused = true, nullptr;
    return std::malloc(n);
}

inline void* stb_realloc(void* p, std::size_t n) {
    if (n > stb_block_limit) return stb_block_refused = true, nullptr;
    return std::realloc(p, n);
}

// Sets the bound for one decode on this thread, and restores it when the decode is done.
class StbBlockLimit {
public:
    explicit StbBlockLimit(std::size_t bytes) : saved_(stb_block_limit) {
        stb_block_limit = bytes;
        stb_block_refused = false;
    }
    ~StbBlockLimit() { stb_block_limit = saved_; }
    StbBlockLimit(const StbBlockLimit&) = delete;
    StbBlockLimit& operator=(const StbBlockLimit&) = delete;

private:
    std::size_t saved_;
};

} // namespace facet::detail

#ifndef FACET_USE_EXTERNAL_STB
#ifndef FACET_STB_IMPLEMENTED
#define FACET_STB_IMPLEMENTED
#define STBI_MALLOC(n) facet::detail::stb_malloc(n)
#define STBI_REALLOC(p, n) facet::detail::stb_realloc(p, n)
#define STBI_FREE(p) std::free(p)
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_MAX_DIMENSIONS 16384
// facet reads JPEG and PNG only (detail::unsupported_format names the rest). stb_image's other
// decoders are where its known defects live: an out-of-bounds read on 16-bit PNM (CVE-2021-42716),
// an endless loop on a 49-byte HDR file (CVE-2021-42715), a NULL dereference on PIC, and BMP,
// TGA, PNM and GIF files that decode without their data (uninitialised heap as pixels,
// CVE-2023-45663). PNG is walked and bounded before stb sees it (check_png_chunks, StbBlockLimit).
#define STBI_ONLY_PNG
#ifndef FACET_WITH_LIBJPEG
// Without libjpeg-turbo, stb_image decodes JPEGs too. With it, JPEGs go to libjpeg-turbo only:
// stb's JPEG decoder, which also takes files that only start like a JPEG (fill bytes before the
// SOI marker), would be a second, less hardened decoder for them (fuzz_detect found an
// out-of-bounds read in its Huffman decoding).
#define STBI_ONLY_JPEG
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#endif
#else
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#endif

namespace facet {

// Limits on what facet decodes: larger images are refused before any pixel is allocated.
constexpr int kMaxImageSide = 16384;
constexpr long long kMaxImagePixels = 100'000'000;
constexpr std::uint64_t kMaxImageFileBytes = std::uint64_t(1) << 30;

// 8-bit RGB, interleaved, row-major.
struct Image {
    int width = 0, height = 0;
    std::vector<std::uint8_t> rgb; // the pixels, unless the image is a view
    // A view's pixels (Image::view), owned by the caller; null when the image owns `rgb`.
    const std::uint8_t* borrowed = nullptr;

    Image() = default;
    Image(int w, int h) : width(w), height(h), rgb(static_cast<std::size_t>(w) * h * 3, 0) {}
    // An image read in place from w x h RGB pixels, row after row, without a copy (the Python
    // binding wraps NumPy arrays this way). The caller keeps them alive and unchanged while the
    // view is in use; a view is read-only (declare it const).
    static Image view(const std::uint8_t* rgb_pixels, int w, int h) {
        Image img;
        img.width = w;
        img.height = h;
        img.borrowed = rgb_pixels;
        return img;
    }
    const std::uint8_t* data() const { return borrowed ? borrowed : rgb.data(); }
    std::uint8_t* pixel(int x, int y) {
        assert(!borrowed && "a view is read-only");
        return rgb.data() + (static_cast<std::size_t>(y) * width + x) * 3;
    }
    const std::uint8_t* pixel(int x, int y) const { return data() + (static_cast<std::size_t>(y) * width + x) * 3; }
};

// Float image, `channels` interleaved (for resampling before a network).
struct ImageF {
    int width = 0, height = 0, channels = 0;
    std::vector<float> data;

    ImageF() = default;
    ImageF(int w, int h, int c) : width(w), height(h), channels(c), data(static_cast<std::size_t>(w) * h * c, 0.0f) {}
    float* pixel(int x, int y) { return data.data() + (static_cast<std::size_t>(y) * width + x) * channels; }
    const float* pixel(int x, int y) const { return data.data() + (static_cast<std::size_t>(y) * width + x) * channels; }
};

namespace detail {

constexpr std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

inline bool is_png(const std::uint8_t* bytes, std::size_t size) {
    return size >= 8 && std::equal(kPngSignature, kPngSignature + 8, bytes);
}

// PNG's integers (chunk lengths, IHDR's size) are 32-bit big-endian.
inline std::uint32_t read_be32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

// The size in a PNG's header (IHDR), if `bytes` starts with one and it fits an int.
inline bool png_header_size(const std::uint8_t* bytes, std::size_t size, int& w, int& h) {
    if (size < 24 || !is_png(bytes, size) || read_be32(bytes + 8) != 13 || !std::equal(bytes + 12, bytes + 16, "IHDR")) return false;
    if (read_be32(bytes + 16) > INT32_MAX || read_be32(bytes + 20) > INT32_MAX) return false;
    w = static_cast<int>(read_be32(bytes + 16));
    h = static_cast<int>(read_be32(bytes + 20));
    return true;
}

// stb_image trusts a PNG's chunk lengths, and fuzzing (fuzz/fuzz_detect.cpp) found two ways that
// hurts: an IDAT chunk claiming 1.4 GB in a 121-byte file made it allocate 2 GB before it found
// the data missing, and an empty IDAT chunk before any image data made it call
// memcpy(NULL, src, 0), undefined behaviour. So the chunks are walked first, up to IEND: a chunk
// that runs past the end of the file (or a file without IEND) is refused; stb could not decode
// such a file anyway, it reads every chunk up to IEND. Empty IDAT chunks, which the standard allows
// and which hold no data, are dropped from a copy. Returns true when `out` holds that copy, false
// when `bytes` is not a PNG or needs no copy.
inline bool check_png_chunks(const std::uint8_t* bytes, std::size_t size, const std::string& name,
                             std::vector<std::uint8_t>& out) {
    if (!is_png(bytes, size)) return false;
    const auto length_at = [&](std::size_t at) { return read_be32(bytes + at); };
    const auto type_is = [&](std::size_t at, const char* type) { return std::equal(bytes + at + 4, bytes + at + 8, type); };
    const auto empty_idat = [&](std::size_t at) { return length_at(at) == 0 && type_is(at, "IDAT"); };
    bool has_empty_idat = false;
    std::size_t end = 8; // past IEND, once found
    for (bool iend = false; !iend;) {
        if (size - end < 12) throw Error(name + ": truncated PNG (it ends before its IEND chunk)");
        const std::size_t length = length_at(end), left = size - end - 12;
        if (length > left)
            throw Error(name + ": truncated or corrupt PNG: the chunk at byte " + std::to_string(end) + " claims " +
                        std::to_string(length) + " bytes, the file has " + std::to_string(left) + " left");
        has_empty_idat |= empty_idat(end);
        iend = type_is(end, "IEND");
        end += 12 + length;
    }
    if (!has_empty_idat) return false;
    out.assign(bytes, bytes + 8);
    for (std::size_t at = 8; at < end; at += 12 + length_at(at))
        if (!empty_idat(at)) out.insert(out.end(), bytes + at, bytes + at + 12 + length_at(at));
    return true;
}

// The name of an image format facet does not read, if `bytes` start like one (null otherwise).
// stb_image could decode several of them, but its decoders for those formats are unsafe (see
// STBI_ONLY_PNG above); naming the format tells a user what to convert.
inline const char* unsupported_format(const std::uint8_t* bytes, std::size_t size) {
    const auto starts_with = [&](std::size_t at, const char* magic, std::size_t n) {
        return size >= at + n && std::memcmp(bytes + at, magic, n) == 0;
    };
    if (starts_with(0, "BM", 2)) return "BMP";
    if (starts_with(0, "GIF87a", 6) || starts_with(0, "GIF89a", 6)) return "GIF";
    if (size >= 3 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '7' && bytes[2] && std::strchr(" \t\r\n", bytes[2]))
        return "PNM (PBM / PGM / PPM / PAM)";
    if (starts_with(0, "#?RADIANCE", 10) || starts_with(0, "#?RGBE", 6)) return "Radiance HDR";
    if (starts_with(0, "\x53\x80\xF6\x34", 4)) return "Softimage PIC";
    if (starts_with(0, "8BPS", 4)) return "Photoshop PSD";
    if (starts_with(0, "II*\0", 4) || starts_with(0, "MM\0*", 4)) return "TIFF";
    if (starts_with(0, "RIFF", 4) && starts_with(8, "WEBP", 4)) return "WebP";
    if (starts_with(4, "ftypheic", 8) || starts_with(4, "ftypheix", 8) || starts_with(4, "ftypmif1", 8)) return "HEIF";
    if (starts_with(4, "ftypavif", 8)) return "AVIF";
    if (starts_with(0, "\0\0\0\x0CjP  \r\n\x87\n", 12)) return "JPEG 2000";
    if (starts_with(0, "\xFF\x0A", 2) || starts_with(0, "\0\0\0\x0CJXL \r\n\x87\n", 12)) return "JPEG XL";
    if (starts_with(0, "qoif", 4)) return "QOI";
    return nullptr;
}

} // namespace detail

// Whether a w x h image is within the limits: at most kMaxImageSide a side and `max_pixels` (never
// more than kMaxImagePixels) in all, and not empty.
inline bool image_size_within_limits(int w, int h, long long max_pixels = kMaxImagePixels) {
    max_pixels = std::min(max_pixels, kMaxImagePixels);
    return w > 0 && h > 0 && w <= kMaxImageSide && h <= kMaxImageSide && static_cast<long long>(w) * h <= max_pixels;
}

// Throws unless a w x h image is within the limits (image_size_within_limits), saying which.
inline void check_image_size(int w, int h, const std::string& what, long long max_pixels = kMaxImagePixels) {
    max_pixels = std::min(max_pixels, kMaxImagePixels);
    if (w <= 0 || h <= 0) throw Error(what + ": empty image");
    if (!image_size_within_limits(w, h, max_pixels))
        throw Error(what + ": image is " + std::to_string(w) + "x" + std::to_string(h) + ", larger than facet's limit of " +
                    std::to_string(kMaxImageSide) + " px a side and " + std::to_string(max_pixels) + " pixels");
}

// Decodes JPEG and PNG to 8-bit RGB; other formats are refused by name (unsupported_format).
// Grey is replicated; alpha is dropped (detection looks at the colour channels only); 16-bit PNGs
// are reduced to 8 bits. The size is checked against
// the limits (check_image_size; `max_pixels` lowers the pixel limit) from the header, before any
// pixel memory is allocated.
inline Image decode_image(const std::uint8_t* bytes, std::size_t size, const std::string& name,
                          long long max_pixels = kMaxImagePixels) {
    if (size == 0) throw Error(name + ": empty file");
    if (size > static_cast<std::size_t>(INT32_MAX)) throw Error(name + ": file too large");
    Image img;
#ifdef FACET_WITH_LIBJPEG
    if (detail::is_jpeg(bytes, size)) {
        detail::decode_jpeg_libjpeg(
            bytes, size, name, [&](int w, int h) { check_image_size(w, h, name, max_pixels); }, img.width, img.height, img.rgb);
        return img;
    }
#endif
    if (const char* format = detail::unsupported_format(bytes, size))
        throw Error(name + ": " + format + " images are not supported (facet reads JPEG and PNG)");
    int w = 0, h = 0, channels = 0;
    if (!stbi_info_from_memory(bytes, static_cast<int>(size), &w, &h, &channels)) {
        // stb_image refuses a PNG of 0 pixels or more than its (facet's) side limit with a reason
        // that does not say so: say what the header says.
        if (detail::png_header_size(bytes, size, w, h)) check_image_size(w, h, name, max_pixels);
        if (!detail::is_png(bytes, size)) throw Error(name + ": not a readable image (not a JPEG or PNG file)");
        throw Error(name + ": not a readable image (" + stbi_failure_reason() + ")");
    }
    check_image_size(w, h, name, max_pixels);
    std::vector<std::uint8_t> cleaned;
    if (detail::check_png_chunks(bytes, size, name, cleaned)) {
        bytes = cleaned.data();
        size = cleaned.size();
    }
    // The largest block a w x h image can need: 16 bytes a pixel (twice a 16-bit RGBA PNG's 8,
    // for stb's conversion copies) and a filter byte a row, or the file's own data, each twice
    // over as stb grows buffers by doubling, plus 1 MiB for tables and palettes.
    const int header_w = w, header_h = h; // for the message: stb may overwrite w and h
    const std::size_t pixel_count = static_cast<std::size_t>(w) * static_cast<std::size_t>(h);
    const detail::StbBlockLimit limit(2 * (16 * pixel_count + static_cast<std::size_t>(h)) + 2 * size + (std::size_t(1) << 20));
    unsigned char* pixels = stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &channels, 3);
    if (!pixels && detail::stb_block_refused)
        throw Error(name + ": cannot decode image (its data holds far more than a " + std::to_string(header_w) + "x" +
                    std::to_string(header_h) + " image: corrupt, or a decompression bomb)");
    if (!pixels) throw Error(name + ": cannot decode image (" + stbi_failure_reason() + ")");
    img.width = w;
    img.height = h;
    img.rgb.assign(pixels, pixels + static_cast<std::size_t>(w) * h * 3);
    stbi_image_free(pixels);
    return img;
}

inline Image load_image(const std::string& path) {
    const std::vector<std::uint8_t> bytes = read_file(path, kMaxImageFileBytes, "image");
    return decode_image(bytes.data(), bytes.size(), path);
}

// Encoded in memory and written by write_file: stbi_write_png does not check fwrite or fclose, so
// a full disk would leave a truncated PNG without a word.
inline void write_png(const std::string& path, const Image& img) {
    std::vector<std::uint8_t> png;
    const auto append = [](void* context, void* data, int size) {
        auto* out = static_cast<std::vector<std::uint8_t>*>(context);
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        out->insert(out->end(), bytes, bytes + size);
    };
    if (!stbi_write_png_to_func(append, &png, img.width, img.height, 3, img.data(), img.width * 3))
        throw Error(path + ": cannot encode PNG");
    write_file(path, png.data(), png.size(), "PNG");
}

inline ImageF to_float(const Image& img) {
    ImageF out(img.width, img.height, 3);
    std::transform(img.data(), img.data() + out.data.size(), out.data.begin(), [](std::uint8_t v) { return static_cast<float>(v); });
    return out;
}

// Where output index i of a bilinear resampling from `in` to `out` samples: between source
// indices i0 and i1 with weight w on i1. Pixel centres aligned (align_corners = false, as OpenCV's
// INTER_LINEAR and PyTorch's bilinear), clamped at the edges.
struct BilinearTap {
    int i0, i1;
    float w;
};

inline std::vector<BilinearTap> bilinear_taps(int in, int out) {
    std::vector<BilinearTap> taps(static_cast<std::size_t>(out));
    const double scale = static_cast<double>(in) / out;
    for (int i = 0; i < out; ++i) {
        const double f = std::max(0.0, (i + 0.5) * scale - 0.5);
        const int i0 = std::min(static_cast<int>(f), in - 1);
        taps[i] = {i0, std::min(i0 + 1, in - 1), static_cast<float>(f - i0)};
    }
    return taps;
}

// Calls put(x, y, c, value) for every output sample of the bilinear resampling of
// `get(x, y, c)` (a width x height x channels source) to the sizes of the two tap tables.
template <class Get, class Put>
inline void resample_bilinear(const std::vector<BilinearTap>& xs, const std::vector<BilinearTap>& ys, int channels,
                              Get&& get, Put&& put) {
    for (std::size_t y = 0; y < ys.size(); ++y) {
        const BilinearTap ty = ys[y];
        for (std::size_t x = 0; x < xs.size(); ++x) {
            const BilinearTap tx = xs[x];
            for (int c = 0; c < channels; ++c) {
                const float top = get(tx.i0, ty.i0, c) * (1 - tx.w) + get(tx.i1, ty.i0, c) * tx.w;
                const float bottom = get(tx.i0, ty.i1, c) * (1 - tx.w) + get(tx.i1, ty.i1, c) * tx.w;
                put(static_cast<int>(x), static_cast<int>(y), c, top * (1 - ty.w) + bottom * ty.w);
            }
        }
    }
}

// Bilinear resampling (see bilinear_taps). Meant for moderate scale changes (max_side).
inline ImageF resize_bilinear(const ImageF& src, int out_w, int out_h) {
    ImageF dst(out_w, out_h, src.channels);
    resample_bilinear(
        bilinear_taps(src.width, out_w), bilinear_taps(src.height, out_h), src.channels,
        [&](int x, int y, int c) { return src.pixel(x, y)[c]; }, [&](int x, int y, int c, float v) { dst.pixel(x, y)[c] = v; });
    return dst;
}

// The source indices [begin, end) that output index i of an area resampling from `in` to `out`
// averages: [floor(i * in / out), ceil((i + 1) * in / out)), as PyTorch's adaptive_avg_pool2d
// (interpolate(mode="area")). Windows overlap by a pixel where in / out is not whole. area_spans
// fills `spans` with the `out` of them (a caller resampling every frame keeps the vector).
struct AreaSpan {
    int begin, end;
};

inline void area_spans(int in, int out, std::vector<AreaSpan>& spans) {
    spans.resize(static_cast<std::size_t>(out));
    for (int i = 0; i < out; ++i)
        spans[i] = {static_cast<int>(static_cast<long long>(i) * in / out),
                    static_cast<int>((static_cast<long long>(i + 1) * in + out - 1) / out)};
}

// Calls put(x, y, c, value) for every output sample of the area resampling of `get(x, y, c)`
// (`Channels` channels) to the sizes of the two span tables. The mean is computed as PyTorch's CPU
// kernel does, in float: the window's sum (row by row), divided by its rows, then by its columns.
// 8-bit samples are summed as integers, which is exactly PyTorch's float sum of them while that
// stays below 2^24 (windows up to 65,000 pixels).
template <int Channels, class Get, class Put>
inline void resample_area(const std::vector<AreaSpan>& xs, const std::vector<AreaSpan>& ys, Get&& get, Put&& put) {
    using Sample = decltype(get(0, 0, 0));
    using Sum = std::conditional_t<std::is_integral_v<Sample>, std::uint32_t, float>;
    for (std::size_t y = 0; y < ys.size(); ++y) {
        const AreaSpan sy = ys[y];
        for (std::size_t x = 0; x < xs.size(); ++x) {
            const AreaSpan sx = xs[x];
            Sum sum[Channels] = {}; // all channels at once: one pass over the window
            for (int iy = sy.begin; iy < sy.end; ++iy)
                for (int ix = sx.begin; ix < sx.end; ++ix)
                    for (int c = 0; c < Channels; ++c) sum[c] += get(ix, iy, c);
            const float rows = static_cast<float>(sy.end - sy.begin), cols = static_cast<float>(sx.end - sx.begin);
            for (int c = 0; c < Channels; ++c)
                put(static_cast<int>(x), static_cast<int>(y), c, static_cast<float>(sum[c]) / rows / cols);
        }
    }
}

// The summed-area table of an 8-bit RGB image: at(x, y)[c] is the sum of channel c over the
// pixels [0, x) x [0, y), modulo 2^32. Any window's sum is then four of its entries (the
// area-resampling row kernels, plan_area_row below), where resample_area reads every pixel of the window, and a
// window's pixels once more for every output whose window overlaps it: MTCNN area-resamples one
// image to a dozen pyramid levels and hundreds of crops, 30% of its frame when each read its
// windows. Unsigned arithmetic wraps, so a window's sum is exact whenever the sum itself is below
// 2^32 (windows up to 16.8 million pixels), whatever the entries hold. build() reuses the table's
// memory from image to image.
struct SummedAreaTable {
    int width = 0, height = 0; // the image's; the table has (width + 1) x (height + 1) entries
    std::vector<std::uint32_t> sums;

    void build(const Image& image) {
        width = image.width;
        height = image.height;
        sums.resize(static_cast<std::size_t>(width + 1) * (height + 1) * 3);
        std::fill(sums.begin(), sums.begin() + static_cast<std::ptrdiff_t>(width + 1) * 3, 0u);
        for (int y = 0; y < height; ++y) {
            const std::uint8_t* px = image.pixel(0, y);
            const std::uint32_t* above = at(0, y);
            std::uint32_t* row = sums.data() + (static_cast<std::size_t>(y + 1) * (width + 1)) * 3;
            std::uint32_t left[3] = {0, 0, 0}; // this row's sum so far
            row[0] = row[1] = row[2] = 0;
            for (int x = 0; x < width; ++x)
                for (int c = 0; c < 3; ++c) {
                    left[c] += px[x * 3 + c];
                    row[(x + 1) * 3 + c] = above[(x + 1) * 3 + c] + left[c];
                }
        }
    }
    const std::uint32_t* at(int x, int y) const { return sums.data() + (static_cast<std::size_t>(y) * (width + 1) + x) * 3; }
};

// The plan of the area-resampling row kernels (kernels/area_row_plan.hpp) for an image region
// whose output columns have the windows xs (column offsets from the region's left edge): output
// channel c reads the image's channel source_channel[c] and is normalised as (mean - mean[c]) *
// scale[c]. Each row y is then kernels.area_row(table.at(x0, y0 + ys[y].begin), table.at(x0, y0 +
// ys[y].end), ys[y].end - ys[y].begin, ...): resample_area's values, from the same integer sums
// (four table entries a window, where the direct resample_area reads every pixel of it). plan
// keeps its memory from region to region.
inline void plan_area_row(const std::vector<AreaSpan>& xs, const std::array<int, 3>& source_channel,
                          const std::array<float, 3>& mean, const std::array<float, 3>& scale, AreaRowPlan& plan) {
    plan.values = static_cast<int>(xs.size()) * 3;
    plan.entries = xs.empty() ? 0 : (xs.back().end + 1) * 3;
    const auto padded = static_cast<std::size_t>(round_up(plan.values, AreaRowPlan::kPad));
    plan.first.assign(padded, 0);
    plan.last.assign(padded, 0);
    plan.width.assign(padded, 1.0f);
    plan.mean.assign(padded, 0.0f);
    plan.scale.assign(padded, 0.0f);
    for (std::size_t x = 0; x < xs.size(); ++x)
        for (int c = 0; c < 3; ++c) {
            const std::size_t i = x * 3 + static_cast<std::size_t>(c);
            plan.first[i] = xs[x].begin * 3 + source_channel[c];
            plan.last[i] = xs[x].end * 3 + source_channel[c];
            plan.width[i] = static_cast<float>(xs[x].end - xs[x].begin);
            plan.mean[i] = mean[c];
            plan.scale[i] = scale[c];
        }
}

// Area resampling (see area_spans): each output pixel is the mean of the source pixels it covers.
inline ImageF resize_area(const ImageF& src, int out_w, int out_h) {
    ImageF dst(out_w, out_h, src.channels);
    std::vector<AreaSpan> xs, ys;
    area_spans(src.width, out_w, xs);
    area_spans(src.height, out_h, ys);
    for (int channel = 0; channel < src.channels; ++channel) // one at a time, so any channel count works
        resample_area<1>(
            xs, ys, [&](int x, int y, int) { return src.pixel(x, y)[channel]; },
            [&](int x, int y, int, float v) { dst.pixel(x, y)[channel] = v; });
    return dst;
}

// Where output index i of OpenCV's bicubic resampling (cv::resize with INTER_CUBIC, a = -0.75)
// from `in` to `out` samples: four source indices, clamped at the edges (OpenCV replicates the
// border), and their weights in OpenCV's fixed point for 8-bit images (11 fraction bits). The
// source position and the weights are computed in float, as OpenCV does, so that the result is
// OpenCV's to the last bit: upstream landmark models were trained and tested on its crops.
struct CubicTap {
    std::array<int, 4> index;
    std::array<int, 4> weight;
};

inline std::vector<CubicTap> cubic_taps(int in, int out) {
    constexpr float a = -0.75f, one_in_fixed_point = 2048.0f;
    std::vector<CubicTap> taps(static_cast<std::size_t>(out));
    const double scale = 1.0 / (static_cast<double>(out) / in);
    for (int i = 0; i < out; ++i) {
        const float position = static_cast<float>((i + 0.5) * scale - 0.5);
        const int first = static_cast<int>(std::floor(position));
        const float x = position - static_cast<float>(first);
        float w[4];
        w[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
        w[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
        w[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
        w[3] = 1.0f - w[0] - w[1] - w[2];
        for (int k = 0; k < 4; ++k) {
            taps[i].index[k] = std::clamp(first - 1 + k, 0, in - 1);
            taps[i].weight[k] = static_cast<int>(std::lrint(w[k] * one_in_fixed_point));
        }
    }
    return taps;
}

// The bicubic resampling of an 8-bit source with `Channels` interleaved channels, whose row y is
// source_row(y) (a pointer to its samples), to the sizes of the two tap tables, into the rows
// output_row(y), in OpenCV's integer arithmetic: weights with 11 fraction bits in both passes, the
// sum rounded off its 22 fraction bits and saturated to 0..255. The sums are exact integers (they
// stay below 2^31), so the order of the passes does not change them: the vertical one runs first,
// over whole contiguous rows. `sums` is scratch memory, kept by the caller so that calls of one
// size allocate nothing.
template <int Channels, class SourceRow, class OutputRow>
inline void resample_cubic(const std::vector<CubicTap>& xs, const std::vector<CubicTap>& ys, std::vector<std::int32_t>& sums,
                           SourceRow&& source_row, OutputRow&& output_row) {
    int columns = 0;
    for (const CubicTap& t : xs) columns = std::max(columns, t.index[3] + 1);
    const std::size_t row_size = static_cast<std::size_t>(columns) * Channels;
    sums.resize(row_size);
    for (std::size_t y = 0; y < ys.size(); ++y) {
        const CubicTap& t = ys[y];
        const std::uint8_t* r[4];
        for (int k = 0; k < 4; ++k) r[k] = source_row(t.index[k]);
        for (std::size_t i = 0; i < row_size; ++i)
            sums[i] = t.weight[0] * r[0][i] + t.weight[1] * r[1][i] + t.weight[2] * r[2][i] + t.weight[3] * r[3][i];
        std::uint8_t* out = output_row(static_cast<int>(y));
        for (std::size_t x = 0; x < xs.size(); ++x) {
            const CubicTap& u = xs[x];
            for (int c = 0; c < Channels; ++c) {
                const std::int32_t sum = u.weight[0] * sums[u.index[0] * Channels + c] + u.weight[1] * sums[u.index[1] * Channels + c] +
                                         u.weight[2] * sums[u.index[2] * Channels + c] + u.weight[3] * sums[u.index[3] * Channels + c];
                out[x * Channels + c] = static_cast<std::uint8_t>(std::clamp((sum + (1 << 21)) >> 22, 0, 255));
            }
        }
    }
}

} // namespace facet
