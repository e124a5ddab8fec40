// facet: reading raw video frames from a YUV4MPEG2 (.y4m) stream, as `ffmpeg -f yuv4mpegpipe`
// writes it, and converting them to RGB.
//
// Supported: 8-bit 4:2:0 (C420, C420jpeg, C420mpeg2, C420paldv; chroma siting is ignored), 4:4:4
// (C444) and grey (Cmono); limited ("TV") range BT.601 unless the header says XCOLORRANGE=FULL.
// Anything else is refused with the reason.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "image.hpp"

namespace facet {

class Y4mReader {
public:
    // Reads the stream header from `in` (not owned); throws on a malformed or unsupported header.
    explicit Y4mReader(std::FILE* in, std::string name = "stdin") : in_(in), name_(std::move(name)) {
        const std::string header = read_line(64 * 1024, "header");
        if (header.rfind("YUV4MPEG2", 0) != 0) fail("not a YUV4MPEG2 stream");
        std::string chroma = "420jpeg";
        for (std::size_t p = header.find(' '); p != std::string::npos;) {
            const std::size_t end = header.find(' ', p + 1);
            const std::string token = header.substr(p + 1, end == std::string::npos ? std::string::npos : end - p - 1);
            p = end;
            if (token.empty()) continue;
            const std::string value = token.substr(1);
            switch (token[0]) {
            case 'W': width_ = parse_dimension(value); break;
            case 'H': height_ = parse_dimension(value); break;
            case 'C': chroma = value; break;
            case 'I':
                if (value != "p" && value != "?") fail("interlaced video is not supported");
                break;
            case 'X':
                if (value == "COLORRANGE=FULL") full_range_ = true;
                break;
            default: break; // frame rate, aspect: not needed to decode
            }
        }
        check_image_size(width_, height_, name_);
        if (chroma == "420jpeg" || chroma == "420" || chroma == "420mpeg2" || chroma == "420paldv") {
            chroma_w_ = (width_ + 1) / 2;
            chroma_h_ = (height_ + 1) / 2;
        } else if (chroma == "444") {
            chroma_w_ = width_;
            chroma_h_ = height_;
        } else if (chroma == "mono") {
            chroma_w_ = chroma_h_ = 0;
        } else {
            fail("colour space C" + chroma + " is not supported (8-bit C420*, C444 or Cmono are)");
        }
    }

    int width() const { return width_; }
    int height() const { return height_; }

    // The next frame as RGB into `out` (resized as needed); false at the end of the stream.
    bool read(Image& out) {
        const int first = std::fgetc(in_);
        if (first == EOF) return false;
        std::ungetc(first, in_);
        char marker[5];
        if (std::fread(marker, 1, 5, in_) != 5 || std::string(marker, 5) != "FRAME")
            fail("expected a FRAME marker, found other data (a frame of the wrong size before it, or a corrupt stream)");
        read_line(1024, "FRAME marker"); // its parameters, if any: not needed to decode
        // The frame's memory grows with the data that arrives, a chunk at a time: a header and a
        // FRAME marker alone cannot make the reader allocate a frame (up to 400 MB) that never
        // comes. Once a frame has been read, the buffer is kept: no allocation per frame.
        constexpr std::size_t kChunk = std::size_t(1) << 20;
        const std::size_t frame_bytes = static_cast<std::size_t>(width_) * height_ + 2 * static_cast<std::size_t>(chroma_w_) * chroma_h_;
        for (std::size_t got = 0; got < frame_bytes;) {
            const std::size_t want = std::min(kChunk, frame_bytes - got);
            if (plane_.size() < got + want) plane_.resize(got + want);
            const std::size_t n = std::fread(plane_.data() + got, 1, want, in_);
            got += n;
            if (n < want) fail("truncated frame");
        }
        out.width = width_;
        out.height = height_;
        out.rgb.resize(static_cast<std::size_t>(width_) * height_ * 3);
        to_rgb(out);
        return true;
    }

private:
    [[noreturn]] void fail(const std::string& why) const { throw Error(name_ + ": " + why); }

    int parse_dimension(const std::string& v) const {
        if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos) fail("bad frame size '" + v + "'");
        return std::stoi(v);
    }

    // A line of at most `limit` bytes; `what` names it in messages.
    std::string read_line(std::size_t limit, const char* what) {
        std::string line;
        for (int c; (c = std::fgetc(in_)) != '\n';) {
            if (c == EOF) fail(std::string("unexpected end of stream in the ") + what);
            if (line.size() >= limit) fail(std::string(what) + " line longer than " + std::to_string(limit) + " bytes");
            line += static_cast<char>(c);
        }
        return line;
    }

    // BT.601: limited range maps Y 16..235 and Cb/Cr 16..240 to full scale.
    void to_rgb(Image& out) const {
        const std::uint8_t* y_plane = plane_.data();
        const std::uint8_t* u_plane = y_plane + static_cast<std::size_t>(width_) * height_;
        const std::uint8_t* v_plane = u_plane + static_cast<std::size_t>(chroma_w_) * chroma_h_;
        const float y_scale = full_range_ ? 1.0f : 255.0f / 219.0f, c_scale = full_range_ ? 1.0f : 255.0f / 224.0f;
        const float y_offset = full_range_ ? 0.0f : 16.0f;
        const int sx = chroma_w_ == width_ ? 0 : 1, sy = chroma_h_ == height_ ? 0 : 1;
        for (int y = 0; y < height_; ++y)
            for (int x = 0; x < width_; ++x) {
                const float luma = (y_plane[static_cast<std::size_t>(y) * width_ + x] - y_offset) * y_scale;
                float cb = 0.0f, cr = 0.0f;
                if (chroma_w_ > 0) {
                    const std::size_t c = static_cast<std::size_t>(y >> sy) * chroma_w_ + (x >> sx);
                    cb = (u_plane[c] - 128.0f) * c_scale;
                    cr = (v_plane[c] - 128.0f) * c_scale;
                }
                const float rgb[3] = {luma + 1.402f * cr, luma - 0.344136f * cb - 0.714136f * cr, luma + 1.772f * cb};
                std::uint8_t* p = out.pixel(x, y);
                for (int k = 0; k < 3; ++k) p[k] = static_cast<std::uint8_t>(std::clamp(std::lround(rgb[k]), 0L, 255L));
            }
    }

    std::FILE* in_;
    std::string name_;
    int width_ = 0, height_ = 0, chroma_w_ = 0, chroma_h_ = 0;
    bool full_range_ = false;
    std::vector<std::uint8_t> plane_;
};

} // namespace facet
