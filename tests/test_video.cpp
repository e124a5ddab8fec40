// YUV4MPEG2 input and facet-video, on a clip made here from the golden VGA frame.
#include <doctest/doctest.h>
#include <facet/facet.hpp>
#include <facet/io/y4m.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_util.hpp"

using namespace facet;

namespace {

// BT.601 limited-range 4:2:0 (chroma averaged over 2x2), as ffmpeg's yuv420p.
std::string y4m_clip(const Image& img, int frames) {
    const int cw = (img.width + 1) / 2, ch = (img.height + 1) / 2;
    std::string y(static_cast<std::size_t>(img.width) * img.height, '\0'), u(static_cast<std::size_t>(cw) * ch, '\0'), v = u;
    for (int py = 0; py < img.height; ++py)
        for (int px = 0; px < img.width; ++px) {
            const auto* p = img.pixel(px, py);
            y[static_cast<std::size_t>(py) * img.width + px] =
                static_cast<char>(std::lround(16 + (65.481 * p[0] + 128.553 * p[1] + 24.966 * p[2]) / 255));
        }
    for (int cy = 0; cy < ch; ++cy)
        for (int cx = 0; cx < cw; ++cx) {
            double r = 0, g = 0, b = 0;
            int n = 0;
            for (int dy = 0; dy < 2; ++dy)
                for (int dx = 0; dx < 2; ++dx) {
                    const int px = std::min(2 * cx + dx, img.width - 1), py = std::min(2 * cy + dy, img.height - 1);
                    r += img.pixel(px, py)[0], g += img.pixel(px, py)[1], b += img.pixel(px, py)[2], ++n;
                }
            r /= n, g /= n, b /= n;
            u[static_cast<std::size_t>(cy) * cw + cx] = static_cast<char>(std::lround(128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255));
            v[static_cast<std::size_t>(cy) * cw + cx] = static_cast<char>(std::lround(128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255));
        }
    std::string out = "YUV4MPEG2 W" + std::to_string(img.width) + " H" + std::to_string(img.height) + " F25:1 Ip A1:1 C420jpeg\n";
    for (int f = 0; f < frames; ++f) out += "FRAME\n" + y + u + v;
    return out;
}

Image read_first_frame(const std::string& stream) {
    std::FILE* f = fmemopen(const_cast<char*>(stream.data()), stream.size(), "rb");
    REQUIRE(f != nullptr);
    Image frame;
    try {
        Y4mReader reader(f, "clip.y4m");
        if (!reader.read(frame)) throw Error("no frame");
    } catch (...) {
        std::fclose(f);
        throw;
    }
    std::fclose(f);
    return frame;
}

} // namespace

TEST_CASE("Y4M 4:2:0 frames come back close to the RGB they were made from") {
    const Image rgb = load_image(test::shared_path("golden/crowd_640x480.png"));
    const Image frame = read_first_frame(y4m_clip(rgb, 1));
    REQUIRE(frame.width == 640);
    REQUIRE(frame.height == 480);
    double total = 0;
    for (std::size_t i = 0; i < rgb.rgb.size(); ++i) total += std::abs(int(frame.rgb[i]) - int(rgb.rgb[i]));
    CHECK(total / rgb.rgb.size() < 6.0); // chroma subsampling blurs colour edges, nothing more
}

TEST_CASE("Y4M: bad streams are refused with the reason") {
    CHECK_THROWS_WITH_AS(read_first_frame("P6\n640 480\n"), "clip.y4m: not a YUV4MPEG2 stream", Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W4 H4 C422\n"), doctest::Contains("colour space C422 is not supported"), Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W4 H4 It\n"), "clip.y4m: interlaced video is not supported", Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W4 H4\nFRAME\nabc"), "clip.y4m: truncated frame", Error);
    // Data where a FRAME marker should be (it said "header line too long" before).
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W4 H4\n" + std::string(2000, 'x')),
                         doctest::Contains("clip.y4m: expected a FRAME marker, found other data"), Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W4 H4\nFRAME" + std::string(2000, ' ')),
                         "clip.y4m: FRAME marker line longer than 1024 bytes", Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W99999 H4\n"), doctest::Contains("larger than facet's limit"), Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W-4 H4\n"), doctest::Contains("bad frame size"), Error);
    CHECK_THROWS_WITH_AS(read_first_frame("YUV4MPEG2 W4 H4\n"), "no frame", Error); // a clean end of stream
    CHECK_THROWS_AS(read_first_frame("YUV4MPEG2 H4\n"), Error);
}

TEST_CASE("facet-video: one JSON line per frame with the faces of each, and a summary") {
    const Image rgb = load_image(test::shared_path("golden/crowd_640x480.png"));
    const std::string dir = FACET_BINARY_DIR;
    {
        std::ofstream clip(dir + "/test_clip.y4m", std::ios::binary);
        clip << y4m_clip(rgb, 3);
    }
    const std::string cmd = std::string(FACET_VIDEO_EXE) + " < " + dir + "/test_clip.y4m > " + dir + "/test_clip.jsonl 2> " + dir +
                            "/test_clip.log";
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream lines(dir + "/test_clip.jsonl");
    std::string line;
    int frames = 0;
    RetinaFace detector(test::weights_path("retinaface_mnet025_official.facet"));
    const std::size_t rgb_faces = detector.detect(rgb).size();
    while (std::getline(lines, line)) {
        const json::Value v = json::parse(line);
        CHECK(v["frame"].number() == frames);
        CHECK(v["width"].number() == 640);
        const std::size_t faces = v["faces"].array().size();
        CHECK(faces + 2 >= rgb_faces); // the same crowd, give or take the faces at the threshold
        CHECK(faces <= rgb_faces + 2);
        ++frames;
    }
    CHECK(frames == 3);
    std::ifstream log(dir + "/test_clip.log");
    std::stringstream summary;
    summary << log.rdbuf();
    CHECK(summary.str().find("3 frames of 640x480") != std::string::npos);
    CHECK(summary.str().find("p99") != std::string::npos);
}
