// facet: JPEG decoding with libjpeg(-turbo), used when FACET_WITH_LIBJPEG is defined (the CMake
// target defines it when libjpeg is found).
//
// Why not stb_image for JPEG: the JPEG standard leaves the inverse DCT's rounding to the decoder.
// stb_image's differs from libjpeg-turbo's ISLOW (the decoder behind OpenCV, Pillow and
// torchvision) by up to 3 levels on about 6% of pixels of a typical photo, which moves
// mid-confidence RetinaFace scores by up to 0.007. With libjpeg-turbo, facet reproduces the
// upstream Python pipeline to 1e-5 on the golden images. Settings are libjpeg's defaults (ISLOW
// IDCT, fancy chroma up-sampling), as those libraries use them.
#pragma once
#include <csetjmp>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <jerror.h> // the message codes (J_MESSAGE_CODE)

#include "../core/error.hpp"

namespace facet::detail {

struct JpegErrorManager {
    jpeg_error_mgr base;
    std::jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    bool damaged; // a warning of damaged data ended decoding, not an error
};

extern "C" inline void facet_jpeg_error_exit(j_common_ptr info) {
    auto* err = reinterpret_cast<JpegErrorManager*>(info->err);
    (*info->err->format_message)(info, err->message);
    std::longjmp(err->jump, 1);
}

// Whether libjpeg's warning `code` leaves the pixels intact. libjpeg recovers from damaged data
// with a warning and goes on: a file cut short gets its missing rows in grey ("Premature end of
// JPEG file"), corrupt entropy-coded data decodes to blocks of garbage. Such an image would give
// faces found in what is left of it, a silently wrong result, so every warning is refused but
// these, which say nothing about the pixels: bytes skipped between two markers (common in
// camera files, e.g. padding before EOI), an unknown JFIF revision, a broken ICC profile (facet
// does not use colour profiles).
inline bool harmless_jpeg_warning(int code) {
    return code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR || code == JWRN_BOGUS_ICC;
}

// libjpeg's messages: level -1 is a warning, handled as above; higher levels are trace output.
// Nothing reaches stderr: the message of a refused file is facet's (decode_jpeg_libjpeg throws it).
extern "C" inline void facet_jpeg_message(j_common_ptr info, int level) {
    if (level >= 0 || harmless_jpeg_warning(info->err->msg_code)) return;
    reinterpret_cast<JpegErrorManager*>(info->err)->damaged = true;
    facet_jpeg_error_exit(info);
}

inline bool is_jpeg(const std::uint8_t* bytes, std::size_t size) { return size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF; }

// Decodes to 8-bit RGB. `check_size(w, h)` runs after the header is read and before any pixel
// memory is allocated, so an oversized image is refused cheaply. CMYK / YCCK JPEGs (Adobe,
// inverted) are converted as Photoshop writes them.
template <class CheckSize>
inline void decode_jpeg_libjpeg(const std::uint8_t* bytes, std::size_t size, const std::string& name, CheckSize check_size,
                                int& width, int& height, std::vector<std::uint8_t>& rgb) {
    jpeg_decompress_struct info;
    JpegErrorManager err;
    info.err = jpeg_std_error(&err.base);
    err.base.error_exit = facet_jpeg_error_exit;
    err.base.emit_message = facet_jpeg_message;
    err.damaged = false;
    // Between setjmp and the end of decoding no object with a destructor is created, so the
    // longjmp of an error skips nothing; the error is thrown after it lands.
    std::string failure;
    std::exception_ptr refusal; // check_size's exception, rethrown once the decompressor is destroyed
    std::vector<std::uint8_t> row;
    if (setjmp(err.jump)) {
        failure = err.message;
    } else {
        jpeg_create_decompress(&info);
        jpeg_mem_src(&info, bytes, static_cast<unsigned long>(size));
        jpeg_read_header(&info, TRUE);
        const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
        info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
        try {
            check_size(static_cast<int>(info.image_width), static_cast<int>(info.image_height));
        } catch (...) {
            refusal = std::current_exception();
        }
    }
    if (!refusal && failure.empty()) {
        // Still inside the setjmp above: an error here lands there too.
        const bool cmyk = info.out_color_space == JCS_CMYK;
        jpeg_start_decompress(&info);
        width = static_cast<int>(info.output_width);
        height = static_cast<int>(info.output_height);
        const int in_channels = info.output_components;
        rgb.resize(static_cast<std::size_t>(width) * height * 3);
        row.resize(static_cast<std::size_t>(width) * in_channels);
        while (info.output_scanline < info.output_height) {
            JSAMPROW rows[1] = {row.data()};
            const auto y = info.output_scanline;
            jpeg_read_scanlines(&info, rows, 1);
            std::uint8_t* out = rgb.data() + static_cast<std::size_t>(y) * width * 3;
            if (!cmyk) {
                std::copy(row.begin(), row.end(), out);
                continue;
            }
            for (int x = 0; x < width; ++x) {
                const unsigned k = row[x * 4 + 3];
                for (int c = 0; c < 3; ++c) out[x * 3 + c] = static_cast<std::uint8_t>((row[x * 4 + c] * k + 127) / 255);
            }
        }
        jpeg_finish_decompress(&info);
    }
    jpeg_destroy_decompress(&info);
    if (refusal) std::rethrow_exception(refusal);
    if (!failure.empty())
        throw Error(name + (err.damaged ? ": truncated or corrupt JPEG (" : ": cannot decode JPEG (") + failure + ")");
}

} // namespace facet::detail
