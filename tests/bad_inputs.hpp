// The bad-input table (README, "Threat model and guarantees"): every kind of broken or unusual
// image and weight file a user may hand facet, generated here byte by byte, with what facet must
// do with it. tests/test_bad_inputs.cpp checks each in process; tests/make_bad_inputs.cpp writes
// them to files for tests/test_bad_inputs.sh, which checks facet-detect's message and exit status
// (and, in the sanitizer build, that nothing leaks). The fuzzers start from the valid ones.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <facet/io/image.hpp>
#include <facet/io/weights.hpp>
#ifdef FACET_WITH_LIBJPEG
#include <cstdio>
#include <jpeglib.h>
#endif

#include "facet_writer.hpp"

namespace facet::test {

struct BadInput {
    std::string file;    // file name; the extension says what it is
    std::string what;    // one line for the README table
    std::vector<std::uint8_t> bytes;
    bool weights;        // a weight file (--model); else an image
    int status;          // facet-detect's exit status: 0 accepted (no faces expected), 1 refused
    std::string message; // status 1: in the message, after the file name
};

// ---- PNG, written by hand so that any header (16-bit, 0x0, 20000x20000) can be made.

inline void append_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

inline void png_chunk(std::vector<std::uint8_t>& out, const char* type, const std::vector<std::uint8_t>& data) {
    append_be32(out, static_cast<std::uint32_t>(data.size()));
    const std::size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    append_be32(out, crc32(out.data() + start, out.size() - start));
}

// zlib stream of stored (uncompressed) deflate blocks.
inline std::vector<std::uint8_t> zlib_stored(const std::vector<std::uint8_t>& data) {
    std::vector<std::uint8_t> out = {0x78, 0x01};
    std::size_t at = 0;
    do {
        const std::size_t n = std::min<std::size_t>(65535, data.size() - at);
        out.push_back(at + n == data.size() ? 1 : 0);
        out.push_back(static_cast<std::uint8_t>(n));
        out.push_back(static_cast<std::uint8_t>(n >> 8));
        out.push_back(static_cast<std::uint8_t>(~n));
        out.push_back(static_cast<std::uint8_t>(~n >> 8));
        out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(at), data.begin() + static_cast<std::ptrdiff_t>(at + n));
        at += n;
    } while (at < data.size());
    std::uint32_t a = 1, b = 0;
    for (std::uint8_t v : data) {
        a = (a + v) % 65521;
        b = (b + a) % 65521;
    }
    append_be32(out, (b << 16) | a);
    return out;
}

// Where a PNG made by png_of_zlib has its IDAT chunk: after the signature and IHDR.
constexpr std::size_t kPngIdatOffset = 8 + 25;

// A PNG with that header and one IDAT chunk holding `zlib` (any bytes).
inline std::vector<std::uint8_t> png_of_zlib(std::uint32_t w, std::uint32_t h, int color_type, int bit_depth,
                                             const std::vector<std::uint8_t>& zlib) {
    std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    std::vector<std::uint8_t> ihdr;
    append_be32(ihdr, w);
    append_be32(ihdr, h);
    ihdr.insert(ihdr.end(), {static_cast<std::uint8_t>(bit_depth), static_cast<std::uint8_t>(color_type), 0, 0, 0});
    png_chunk(out, "IHDR", ihdr);
    png_chunk(out, "IDAT", zlib);
    png_chunk(out, "IEND", {});
    return out;
}

// A PNG of colour type `color_type` (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA) and `bit_depth` (8 or
// 16), its samples big-endian in `samples` (rows unfiltered). The header may claim any size:
// `samples` is whatever IDAT should hold.
inline std::vector<std::uint8_t> png(std::uint32_t w, std::uint32_t h, int color_type, int bit_depth,
                                     const std::vector<std::uint8_t>& samples) {
    const int channels = color_type == 0 ? 1 : color_type == 2 ? 3 : color_type == 4 ? 2 : 4;
    const std::size_t row = static_cast<std::size_t>(w) * channels * bit_depth / 8;
    std::vector<std::uint8_t> raw;
    if (row && samples.size() == row * h) {
        for (std::uint32_t y = 0; y < h; ++y) {
            raw.push_back(0); // filter: none
            raw.insert(raw.end(), samples.begin() + static_cast<std::ptrdiff_t>(y * row),
                       samples.begin() + static_cast<std::ptrdiff_t>((y + 1) * row));
        }
    } else {
        raw = samples;
    }
    return png_of_zlib(w, h, color_type, bit_depth, zlib_stored(raw));
}

// `file` (a PNG from png()) with a zero-length IDAT chunk before its data: valid PNG, and the
// input on which fuzz_detect found stb_image's memcpy(NULL, ..., 0).
inline std::vector<std::uint8_t> with_empty_idat(std::vector<std::uint8_t> file) {
    std::vector<std::uint8_t> chunk;
    png_chunk(chunk, "IDAT", {});
    file.insert(file.begin() + kPngIdatOffset, chunk.begin(), chunk.end());
    return file;
}

// `file` (a PNG from png()) with its IDAT chunk's length set to `length` (more than the file
// holds): the shape of the 121-byte input on which fuzz_detect saw stb_image allocate 2 GB.
inline std::vector<std::uint8_t> with_idat_length(std::vector<std::uint8_t> file, std::uint32_t length) {
    for (int i = 0; i < 4; ++i) file[kPngIdatOffset + i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
    return file;
}

// A PNG whose header says 1x1 RGB and whose IDAT inflates to `inflated` zero bytes: stb_image
// inflates PNG data into a buffer that doubles until the stream ends, whatever the header says.
inline std::vector<std::uint8_t> png_bomb(int inflated) {
    std::vector<std::uint8_t> zeros(static_cast<std::size_t>(inflated), 0);
    int length = 0;
    unsigned char* deflated = stbi_zlib_compress(zeros.data(), inflated, &length, 8);
    const std::vector<std::uint8_t> zlib(deflated, deflated + length);
    STBIW_FREE(deflated);
    return png_of_zlib(1, 1, 2, 8, zlib);
}

// w x h samples of `channels` channels: a smooth ramp (no wrap-around below 32 x 24 and 4 channels),
// so that a JPEG of it decodes close to it.
inline std::vector<std::uint8_t> pattern(int w, int h, int channels) {
    std::vector<std::uint8_t> v(static_cast<std::size_t>(w) * h * channels);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < channels; ++c)
                v[(static_cast<std::size_t>(y) * w + x) * channels + c] = static_cast<std::uint8_t>(20 + 2 * x + 3 * y + 30 * c);
    return v;
}

inline std::vector<std::uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

#ifdef FACET_WITH_LIBJPEG
// A JPEG from libjpeg: `channels` 1 (grey), 3 (RGB) or 4 (CMYK, with the Adobe marker), baseline
// or progressive, at `quality`.
inline std::vector<std::uint8_t> jpeg(int w, int h, int channels, bool progressive, const std::vector<std::uint8_t>& samples,
                                      int quality = 95) {
    jpeg_compress_struct info;
    jpeg_error_mgr err;
    info.err = jpeg_std_error(&err);
    jpeg_create_compress(&info);
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&info, &buffer, &size);
    info.image_width = static_cast<JDIMENSION>(w);
    info.image_height = static_cast<JDIMENSION>(h);
    info.input_components = channels;
    info.in_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality, TRUE);
    if (progressive) jpeg_simple_progression(&info);
    jpeg_start_compress(&info, TRUE);
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = const_cast<JSAMPROW>(samples.data() + static_cast<std::size_t>(info.next_scanline) * w * channels);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    std::vector<std::uint8_t> out(buffer, buffer + size);
    std::free(buffer);
    return out;
}

// `file` (a JPEG) with `stray` bytes inserted before its final EOI marker.
inline std::vector<std::uint8_t> with_bytes_before_eoi(std::vector<std::uint8_t> file, const std::vector<std::uint8_t>& stray) {
    file.insert(file.end() - 2, stray.begin(), stray.end());
    return file;
}

// `file` with the frame size in its start-of-frame marker replaced by w x h (no pixels added).
inline std::vector<std::uint8_t> jpeg_claiming(std::vector<std::uint8_t> file, std::uint16_t w, std::uint16_t h) {
    for (std::size_t i = 2; i + 9 < file.size(); ++i)
        if (file[i] == 0xFF && (file[i + 1] == 0xC0 || file[i + 1] == 0xC2)) {
            file[i + 5] = static_cast<std::uint8_t>(h >> 8);
            file[i + 6] = static_cast<std::uint8_t>(h);
            file[i + 7] = static_cast<std::uint8_t>(w >> 8);
            file[i + 8] = static_cast<std::uint8_t>(w);
            break;
        }
    return file;
}
#endif



// The images. Accepted ones must decode (grey, alpha and 16-bit are converted to 8-bit RGB) and run
// through detection; refused ones must be refused from the header, before any pixel is allocated.
inline std::vector<BadInput> bad_images() {
    std::vector<BadInput> v;
    auto add = [&](std::string file, std::string what, std::vector<std::uint8_t> bytes, int status, std::string message = "") {
        v.push_back({std::move(file), std::move(what), std::move(bytes), false, status, std::move(message)});
    };
    add("empty.png", "empty file (0 bytes)", {}, 1, "empty file");
    add("zero.png", "PNG of 0x0 pixels", png(0, 0, 2, 8, {}), 1, "empty image");
    add("zero_width.png", "PNG of 0x5 pixels", png(0, 5, 2, 8, {}), 1, "empty image");
    add("1x1.png", "PNG of 1x1 pixel", png(1, 1, 2, 8, {200, 100, 50}), 0);
    add("1x300.png", "PNG of 1x300 pixels (one column)", png(1, 300, 2, 8, pattern(1, 300, 3)), 0);
    add("300x1.png", "PNG of 300x1 pixels (one row)", png(300, 1, 2, 8, pattern(300, 1, 3)), 0);
    add("grey.png", "grey PNG", png(32, 24, 0, 8, pattern(32, 24, 1)), 0);
    add("grey_alpha.png", "grey + alpha PNG", png(32, 24, 4, 8, pattern(32, 24, 2)), 0);
    add("rgba.png", "RGBA PNG", png(32, 24, 6, 8, pattern(32, 24, 4)), 0);
    add("rgb16.png", "16-bit RGB PNG", png(32, 24, 2, 16, pattern(32, 24, 6)), 0);
    add("grey16.png", "16-bit grey PNG", png(32, 24, 0, 16, pattern(32, 24, 2)), 0);
    add("empty_idat.png", "PNG with an empty IDAT chunk before its data (fuzzing found stb_image's UB on it)",
        with_empty_idat(png(32, 24, 2, 8, pattern(32, 24, 3))), 0);
    add("huge.png", "PNG header claiming 20000x20000 (no pixels)", png(20000, 20000, 2, 8, {0, 0, 0}), 1,
        "image is 20000x20000, larger than facet's limit of 16384 px a side and 100000000 pixels");
    add("16000x16000.png", "PNG header claiming 16000x16000 (256 Mpixel, no pixels)", png(16000, 16000, 2, 8, {0, 0, 0}), 1,
        "image is 16000x16000, larger than facet's limit");
    std::vector<std::uint8_t> half = png(64, 64, 2, 8, pattern(64, 64, 3));
    half.resize(half.size() / 2);
    add("truncated.png", "PNG cut in the middle of its pixels", half, 1,
        "truncated or corrupt PNG: the chunk at byte 33 claims 12363 bytes, the file has 6165 left");
    const std::vector<std::uint8_t> small = png(4, 4, 2, 8, pattern(4, 4, 3));
    add("lying_idat.png", "PNG whose IDAT chunk claims 1.4 GB (fuzzing: stb_image allocated 2 GB for it)",
        with_idat_length(small, 0x5300000f), 1, "truncated or corrupt PNG: the chunk at byte 33 claims 1392508943 bytes");
    add("no_iend.png", "PNG cut right after its IDAT chunk", std::vector<std::uint8_t>(small.begin(), small.end() - 12), 1,
        "truncated PNG (it ends before its IEND chunk)");
    add("bomb.png", "1x1 PNG whose data inflates to 8 MB", png_bomb(8 << 20), 1,
        "cannot decode image (its data holds far more than a 1x1 image: corrupt, or a decompression bomb)");
    std::vector<std::uint8_t> trailing = small;
    trailing.insert(trailing.end(), {'j', 'u', 'n', 'k'});
    add("after_iend.png", "PNG with 4 bytes after its IEND chunk (ignored, as other decoders do)", trailing, 0);
#ifdef FACET_WITH_LIBJPEG
    const std::vector<std::uint8_t> baseline = jpeg(32, 24, 3, false, pattern(32, 24, 3));
    add("baseline.jpg", "baseline RGB JPEG", baseline, 0);
    add("grey.jpg", "grey JPEG", jpeg(32, 24, 1, false, pattern(32, 24, 1)), 0);
    add("cmyk.jpg", "CMYK JPEG (Adobe)", jpeg(32, 24, 4, false, pattern(32, 24, 4)), 0);
    add("progressive.jpg", "progressive JPEG", jpeg(32, 24, 3, true, pattern(32, 24, 3)), 0);
    add("fill_before_soi.jpg", "JPEG-like file with fill bytes before its SOI marker (fuzzing: stb_image's JPEG decoder read out of bounds)",
        {0xff, 0xff, 0xd8, 0xff, 0xc4, 0x00, 0xb5, 0x00, 0xff, 0x02}, 1, "not a readable image");
    add("huge.jpg", "JPEG header claiming 20000x20000 (no pixels)", jpeg_claiming(baseline, 20000, 20000), 1,
        "image is 20000x20000, larger than facet's limit");
    add("huge_progressive.jpg", "progressive JPEG header claiming 16384x16384", jpeg_claiming(jpeg(32, 24, 3, true, pattern(32, 24, 3)), 16384, 16384),
        1, "image is 16384x16384, larger than facet's limit");
    add("head.jpg", "JPEG cut after its first 100 bytes", std::vector<std::uint8_t>(baseline.begin(), baseline.begin() + 100), 1,
        "truncated or corrupt JPEG (Premature end of JPEG file)");
    // libjpeg decodes a JPEG cut short with a warning, its missing rows grey: refused.
    for (const bool progressive : {false, true}) {
        const std::vector<std::uint8_t> whole = jpeg(160, 120, 3, progressive, pattern(160, 120, 3));
        for (const int percent : {10, 33, 90}) {
            const std::string kind = progressive ? "progressive" : "baseline";
            add(kind + "_cut" + std::to_string(percent) + ".jpg", kind + " JPEG cut to " + std::to_string(percent) + "% of its bytes",
                std::vector<std::uint8_t>(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() * percent / 100)), 1,
                "truncated or corrupt JPEG (Premature end of JPEG file)");
        }
    }
    add("padded_before_eoi.jpg", "JPEG with 5 stray bytes before its EOI marker (libjpeg warns, pixels intact: accepted)",
        with_bytes_before_eoi(baseline, {1, 2, 3, 4, 5}), 0);
#endif
    // Formats stb_image could decode but facet does not read (their decoders are unsafe), each
    // with the file that crashed, hung or decoded garbage before.
    std::vector<std::uint8_t> pgm16 = bytes_of("P5\n64 64\n65535\n");
    pgm16.resize(pgm16.size() + 64 * 64 * 2, 0x80);
    add("grey16.pgm", "16-bit PGM (stb_image read past its buffer, CVE-2021-42716)", pgm16, 1,
        "PNM (PBM / PGM / PPM / PAM) images are not supported (facet reads JPEG and PNG)");
    std::vector<std::uint8_t> pic = {0x53, 0x80, 0xF6, 0x34};
    pic.resize(88, 0);
    pic.insert(pic.end(), {'P', 'I', 'C', 'T', 0, 4, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0xE0, 0});
    add("null.pic", "109-byte Softimage PIC (stb_image dereferenced NULL)", pic, 1, "Softimage PIC images are not supported");
    add("endless.hdr", "49-byte Radiance HDR (stb_image looped forever, CVE-2021-42715)",
        bytes_of(std::string("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n\x02\x02\x00\x08", 49)), 1,
        "Radiance HDR images are not supported");
    std::vector<std::uint8_t> bmp = {'B', 'M'};
    bmp.resize(54, 0);
    add("huge.bmp", "54-byte BMP header with no pixels (stb_image decoded it to a black image)", bmp, 1, "BMP images are not supported");
    add("data_less.gif", "35-byte GIF claiming 16384x6103 (stb_image allocated 1.18 GB)",
        bytes_of(std::string("GIF89a\x00\x40\xD7\x17\x00\x00\x00", 13) + std::string(22, '\0')), 1, "GIF images are not supported");
    std::vector<std::uint8_t> ppm = bytes_of("P6\n64 64\n255\n");
    ppm.resize(ppm.size() + 30, 0x40);
    add("cut.ppm", "PPM of 64x64 with 30 bytes of data (stb_image gave uninitialised memory as pixels)", ppm, 1, "PNM (PBM / PGM / PPM / PAM) images are not supported");
    std::vector<std::uint8_t> tga = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 64, 0, 24, 0};
    tga.resize(tga.size() + 64 * 64, 0x40); // a third of its pixels
    add("cut.tga", "uncompressed TGA cut to a third (CVE-2023-45663: uninitialised memory as pixels)", tga, 1,
        "not a readable image (not a JPEG or PNG file)");
    add("text.png", "a PNG that is really a text file", bytes_of("Hello, this is a text file, not a PNG.\n"), 1,
        "not a readable image (not a JPEG or PNG file)");
    return v;
}

inline std::uint64_t read_u64(const std::vector<std::uint8_t>& f, std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, f.data() + at, 8);
    return v;
}

// Where the first tensor's data starts (from the table: the end of the header, metadata and table).
inline std::uint64_t first_tensor_offset(const std::vector<std::uint8_t>& f) {
    std::uint64_t lowest = f.size(), at = read_u64(f, 40);
    std::uint32_t count;
    std::memcpy(&count, f.data() + 48, 4);
    for (std::uint32_t i = 0; i < count; ++i) {
        const unsigned name_len = f[at] | f[at + 1] << 8;
        const unsigned ndim = f[at + 2 + name_len + 1];
        at += 2 + name_len + 2 + 4u * ndim;
        lowest = std::min(lowest, read_u64(f, at));
        at += 16;
    }
    return lowest;
}

// The weight files, each made from a valid RetinaFace file's bytes and refused by name.
inline std::vector<BadInput> bad_weight_files(const std::vector<std::uint8_t>& good) {
    std::vector<BadInput> v;
    auto add = [&](std::string file, std::string what, std::vector<std::uint8_t> bytes, std::string message) {
        v.push_back({std::move(file), std::move(what), std::move(bytes), true, 1, std::move(message)});
    };
    const WeightFile real = WeightFile::from_bytes(good.data(), good.size(), "good.facet");
    const std::uint64_t meta_offset = read_u64(good, 24), meta_size = read_u64(good, 32), table = read_u64(good, 40);
    const std::string meta(reinterpret_cast<const char*>(good.data()) + meta_offset, meta_size);
    const std::uint64_t first_data = first_tensor_offset(good);
    auto cut = [&](std::uint64_t n) { return std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)); };
    add("empty.facet", "empty file (0 bytes)", {}, "not a facet weight file (too short: 0 bytes)");
    add("cut_header.facet", "truncated in the 64-byte header", cut(40), "not a facet weight file (too short: 40 bytes)");
    add("cut_metadata.facet", "truncated in the JSON metadata", cut(meta_offset + meta_size / 2), "truncated or padded");
    add("cut_table.facet", "truncated in the tensor table", cut(table + 100), "truncated or padded");
    add("cut_data.facet", "truncated in the tensor data", cut(first_data + 1000), "truncated or padded");
    add("cut_last_byte.facet", "last byte missing", cut(good.size() - 1), "truncated or padded");
    auto edited = [&](auto&& edit, bool fix_crc = true) {
        std::vector<std::uint8_t> f = good;
        edit(f);
        if (fix_crc) refresh_crc(f);
        return f;
    };
    add("magic.facet", "wrong magic", edited([](auto& f) { f[0] = 'G'; }), "not a facet weight file (bad magic)");
    add("png_as_model.facet", "an image given as the model", png(1, 1, 2, 8, {1, 2, 3}), "not a facet weight file (bad magic)");
    add("future_version.facet", "format version 3 (from a future facet)", edited([](auto& f) { put<std::uint32_t>(f, 8, 3); }),
        "format version 3 is not supported (this facet reads versions 1 to 2; a newer facet wrote it?)");
    // The first record's dtype byte (after name_len and the name) set to int8 in a version-1 file.
    const std::size_t first_dtype = table + 2 + (good[table] | good[table + 1] << 8);
    add("int8_in_version_1.facet", "an int8 tensor in a version-1 file", edited([&](auto& f) { f[first_dtype] = 3; }),
        "has dtype int8, which format version 1 does not have");
    add("checksum.facet", "one bit of a weight flipped (CRC-32 mismatch)",
        edited([&](auto& f) { f[first_data + 4] ^= 0x10; }, false), "checksum mismatch (file corrupt)");
    const std::size_t nan_at = first_data + 8;
    add("nan.facet", "a NaN weight (CRC made to match)",
        edited([&](auto& f) { put<float>(f, nan_at, std::numeric_limits<float>::quiet_NaN()); }), "holds NaN or infinity");
    add("inf.facet", "an infinite weight (CRC made to match)",
        edited([&](auto& f) { put<float>(f, nan_at, -std::numeric_limits<float>::infinity()); }), "holds NaN or infinity");

    std::vector<TensorSpec> tensors;
    for (const WeightTensor& t : real.tensors())
        tensors.push_back({t.name, std::vector<std::uint32_t>(t.shape.begin(), t.shape.end()), std::vector<float>(t.data, t.data + t.count)});
    auto with_meta = [&](const std::string& from, const std::string& to) {
        std::string m = meta;
        const auto at = m.find(from);
        if (at != std::string::npos) m.replace(at, from.size(), to);
        return write_facet(m, tensors);
    };
    add("no_variances.facet", "metadata missing a field (retinaface.variances)", with_meta("\"variances\"", "\"variancez\""),
        "bad metadata (retinaface): missing key 'variances'");
    add("no_activation.facet", "metadata missing a conv's activation", with_meta("\"ssh2.out\"", "\"ssh2.oot\""),
        "missing key 'ssh2.out'");
    add("not_json.facet", "metadata that is not JSON", with_meta("{", "["), "bad metadata: ");
    auto reshaped = tensors;
    for (auto& t : reshaped)
        if (t.name == "body.stage1.0.0.weight") t.shape = {8, 3, 9, 1};
    add("wrong_shape.facet", "a tensor whose shape does not match the recipe", write_facet(meta, reshaped),
        "tensor 'body.stage1.0.0.weight' has shape (8, 3, 9, 1), expected (8, 3, 3, 3)");
    auto missing = tensors;
    for (std::size_t i = 0; i < missing.size(); ++i)
        if (missing[i].name == "fpn.merge1.0.bias") missing.erase(missing.begin() + static_cast<std::ptrdiff_t>(i));
    add("missing_tensor.facet", "a tensor of the recipe missing", write_facet(meta, missing), "tensor 'fpn.merge1.0.bias' is missing");
    // Reduced-precision layers facet has no kernel for, in files facet-quantize never writes.
    const auto with_int8 = [&](const std::string& layer, bool with_quantisation, float input_scale = 0.02f) {
        auto edited_tensors = tensors;
        for (auto& t : edited_tensors)
            if (t.name == layer + ".weight") {
                const std::uint32_t cout = t.shape[0];
                t = TensorSpec(t.name, t.shape, DType::int8, std::vector<std::uint8_t>(t.values.size(), 1));
                if (!with_quantisation) break;
                const std::int32_t zero_point = 0;
                edited_tensors.push_back({layer + ".weight_scale", {cout}, std::vector<float>(cout, 0.01f)});
                edited_tensors.push_back({layer + ".input_scale", {1}, {input_scale}});
                edited_tensors.push_back({layer + ".input_zero_point", {1}, DType::int32,
                                          std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&zero_point),
                                                                    reinterpret_cast<const std::uint8_t*>(&zero_point) + 4)});
                break;
            }
        return write_facet(meta, edited_tensors);
    };
    add("int8_head.facet", "an int8 head (the heads run in float: no int8 kernel)", with_int8("ClassHead.0.conv1x1", false),
        "ClassHead.0.conv1x1 is int8, but the fused stem and the heads have no int8 kernel");
    add("int8_depthwise_alone.facet", "an int8 depthwise before a float32 pointwise (its uint8 output has no reader)",
        with_int8("body.stage2.0.0", true), "body.stage2.0.0 is int8 but body.stage2.0.3 is not");
    // Finite and positive, but input scale x weight scale / output scale would overflow a float.
    add("int8_scale_1e30.facet", "an int8 conv whose input_scale is 1e30 (requantisation would overflow)",
        with_int8("body.stage2.0.3", true, 1e30f), "body.stage2.0.3: input_scale is 1e+30, outside [2^-40, 2^40]");
    add("toy_model.facet", "a valid file of another model kind", write_facet(R"({"model": "toy"})", {{"x", {1}, {1.0f}}}),
        "is a 'toy' model, expected a 'retinaface' model");
    return v;
}

// An imported-graph file (weights/FORMAT.md, model "graph") of input x (4x4x3, pixels as they
// are) and one output y, with the values, ops and tensors given.
inline std::vector<std::uint8_t> graph_file(const std::string& values, const std::string& ops, const std::string& y_onnx_shape,
                                            const std::vector<TensorSpec>& tensors = {}) {
    return write_facet(R"({"format": "facet", "model": "graph", "input": {"color": "rgb", "mean": [0, 0, 0], "scale": [1, 1, 1]},
        "graph": {"input": {"name": "x", "onnx_shape": [1, 3, 4, 4]},
                  "outputs": [{"name": "y", "value": "y", "onnx_shape": )" + y_onnx_shape + R"(, "order": "chw"}],
                  "values": )" + values + R"(, "constants": {}, "ops": )" + ops + "}}",
                       tensors);
}

// Graph files whose geometry is extreme but each of whose numbers is within its own bound: what
// the loader must refuse (or compute) whole, and seeds for fuzz_weights. facet-detect reads them
// as --landmark-model.
inline std::vector<BadInput> bad_graph_files() {
    std::vector<BadInput> v;
    auto add = [&](std::string file, std::string what, std::vector<std::uint8_t> bytes, int status, std::string message = "") {
        v.push_back({std::move(file), std::move(what), std::move(bytes), true, status, std::move(message)});
    };
    add("dilation_wrap.facet", "graph conv of kernel 3x257, dilation 1x2^24: (kernel - 1) x dilation wrapped to a 1-wide window",
        graph_file(R"({"x": [4, 4, 3], "y": [4, 4, 2]})",
                   R"([{"op": "conv", "name": "conv", "input": "x", "output": "y", "weight": "w", "groups": 1, "kernel": [3, 257],
                        "stride": [1, 1], "pads": [1, 1, 1, 1], "dilation": [1, 16777216], "activation": {"kind": "none"}}])",
                   "[1, 2, 4, 4]", {{"w", {2, 3, 3, 257}, std::vector<float>(2 * 3 * 3 * 257, 0.5f)}}),
        1, "op 'conv' (conv): the kernel with its dilation spans more than 2^24 pixels");
    add("resizes_total.facet", "graph of two 3000x3000 resizes and their sum: each map under 1 GiB, 1.6 GiB together",
        graph_file(R"({"x": [4, 4, 3], "a": [3000, 3000, 3], "b": [3000, 3000, 3], "y": [3000, 3000, 3]})",
                   R"([{"op": "resize_nearest", "name": "up_a", "input": "x", "output": "a"},
                       {"op": "resize_nearest", "name": "up_b", "input": "x", "output": "b"},
                       {"op": "add", "name": "sum", "inputs": ["a", "b"], "output": "y"}])",
                   "[1, 3, 3000, 3000]"),
        1, "the graph's maps need 1650 MiB together, more than facet's limit of 1 GiB");
    // The window's size clipped to the padded input is 2^24 x 2^24: as an int product it wrapped to 0.
    add("avg_pool_2p48.facet", "graph average pool (count_include_pad) whose window holds 2^48 padded pixels",
        graph_file(R"({"x": [4, 4, 3], "y": [1, 1, 3]})",
                   R"([{"op": "avg_pool", "name": "pool", "input": "x", "output": "y", "kernel": [16777216, 16777216],
                        "stride": [4, 4], "pads": [16777215, 16777215, 0, 0], "count_include_pad": true}])",
                   "[1, 3, 1, 1]"),
        0);
    return v;
}

} // namespace facet::test
