// Image decoding, resampling and drawing against hand-computed cases.
#include <doctest/doctest.h>
#include <facet/facet.hpp>
#include <facet/kernels/reference_mtcnn.hpp>

#include <cstdio>
#include <fstream>
#include <random>

#include "test_util.hpp"

using namespace facet;

namespace {

std::vector<std::uint8_t> png_bytes(int w, int h, int channels, const std::vector<std::uint8_t>& pixels) {
    int len = 0;
    unsigned char* png = stbi_write_png_to_mem(pixels.data(), w * channels, w, h, channels, &len);
    REQUIRE(png != nullptr);
    std::vector<std::uint8_t> out(png, png + len);
    STBIW_FREE(png);
    return out;
}

ImageF ramp(int w, int h) {
    ImageF img(w, h, 1);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) img.pixel(x, y)[0] = static_cast<float>(10 * y + x);
    return img;
}

} // namespace

TEST_CASE("decode: grey and grey+alpha become RGB, RGBA drops alpha") {
    const auto grey = png_bytes(2, 1, 1, {10, 200});
    Image img = decode_image(grey.data(), grey.size(), "grey.png");
    CHECK(img.width == 2);
    CHECK(img.rgb == std::vector<std::uint8_t>{10, 10, 10, 200, 200, 200});
    const auto ga = png_bytes(1, 1, 2, {77, 0});
    img = decode_image(ga.data(), ga.size(), "ga.png");
    CHECK(img.rgb == std::vector<std::uint8_t>{77, 77, 77});
    const auto rgba = png_bytes(1, 2, 4, {1, 2, 3, 4, 5, 6, 7, 8});
    img = decode_image(rgba.data(), rgba.size(), "rgba.png");
    CHECK(img.rgb == std::vector<std::uint8_t>{1, 2, 3, 5, 6, 7});
}

TEST_CASE("decode: garbage, empty and oversized images are refused with the file name") {
    const std::string text = "this is not a PNG";
    CHECK_THROWS_WITH_AS(decode_image(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), "fake.png"),
                         doctest::Contains("fake.png: not a readable image"), Error);
    CHECK_THROWS_WITH_AS(decode_image(nullptr, 0, "empty.png"), "empty.png: empty file", Error);
    CHECK_THROWS_WITH_AS(load_image("/nonexistent.jpg"), "/nonexistent.jpg: cannot open image (No such file or directory)", Error);
    CHECK_THROWS_WITH_AS(check_image_size(20000, 20000, "big.png"), doctest::Contains("big.png: image is 20000x20000, larger than"), Error);
    CHECK_THROWS_AS(check_image_size(0, 5, "zero.png"), Error);
    // A truncated JPEG (the golden crowd photo cut in half) is refused: libjpeg would fill the
    // missing half with grey and carry on.
    std::ifstream f(test::shared_path("upstream/images/crowd.jpg"), std::ios::binary);
    std::vector<std::uint8_t> jpeg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    REQUIRE(jpeg.size() > 1000);
    const Image full = decode_image(jpeg.data(), jpeg.size(), "crowd.jpg");
    CHECK(full.width == 1024);
    CHECK(full.height == 624);
    CHECK_THROWS_WITH_AS(decode_image(jpeg.data(), jpeg.size() / 2, "half.jpg"),
                         "half.jpg: truncated or corrupt JPEG (Premature end of JPEG file)", Error);
    CHECK_THROWS_AS(decode_image(jpeg.data(), 200, "head.jpg"), Error);
}

TEST_CASE("PNG write and read back is lossless") {
    Image img(3, 2);
    for (std::size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<std::uint8_t>(i * 40);
    const std::string path = std::string(FACET_BINARY_DIR) + "/test_roundtrip.png";
    write_png(path, img);
    CHECK(load_image(path).rgb == img.rgb);
    std::remove(path.c_str());
}

TEST_CASE("area resize: each output is the mean of its source span") {
    // 4x1 -> 2x1: means of (0, 1) and (2, 3); 3x1 -> 2x1: spans [0, 2) and [1, 3) (they overlap).
    ImageF src = ramp(4, 1);
    ImageF half = resize_area(src, 2, 1);
    CHECK(half.pixel(0, 0)[0] == doctest::Approx(0.5));
    CHECK(half.pixel(1, 0)[0] == doctest::Approx(2.5));
    ImageF three = resize_area(ramp(3, 1), 2, 1);
    CHECK(three.pixel(0, 0)[0] == doctest::Approx(0.5));
    CHECK(three.pixel(1, 0)[0] == doctest::Approx(1.5));
    // 2-D: 4x4 -> 2x2, the top-left output averages rows 0-1, cols 0-1: (0 + 1 + 10 + 11) / 4.
    ImageF sq = resize_area(ramp(4, 4), 2, 2);
    CHECK(sq.pixel(0, 0)[0] == doctest::Approx(5.5));
    CHECK(sq.pixel(1, 1)[0] == doctest::Approx(27.5));
}

namespace {

// The region at (x0, y0) area-resampled by the scalar reference row kernel, every row.
std::vector<float> area_rows(const SummedAreaTable& table, int x0, int y0, const std::vector<AreaSpan>& xs,
                             const std::vector<AreaSpan>& ys, const std::array<int, 3>& source_channel) {
    AreaRowPlan plan;
    plan_area_row(xs, source_channel, {0, 0, 0}, {1, 1, 1}, plan);
    std::vector<float> out(xs.size() * ys.size() * 3);
    for (std::size_t y = 0; y < ys.size(); ++y)
        ref::area_row(table.at(x0, y0 + ys[y].begin), table.at(x0, y0 + ys[y].end), static_cast<float>(ys[y].end - ys[y].begin),
                      plan, out.data() + y * xs.size() * 3);
    return out;
}

} // namespace

TEST_CASE("area resampling from a summed-area table: resample_area's values, bit for bit") {
    // The reference reads every pixel of every window; the table reads four corners. Odd image
    // sizes, regions touching each border or not, outputs smaller and larger than the region, and
    // a channel order other than the image's (MTCNN's BGR).
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> byte(0, 255);
    Image image(37, 23);
    for (std::uint8_t& v : image.rgb) v = static_cast<std::uint8_t>(byte(rng));
    SummedAreaTable table;
    table.build(Image(5, 5)); // a smaller image first: build must resize, not keep stale rows
    table.build(image);
    const std::array<int, 3> bgr{2, 1, 0};
    struct Region { int x, y, w, h; };
    for (const Region r : {Region{0, 0, 37, 23}, Region{3, 5, 17, 11}, Region{36, 22, 1, 1}, Region{20, 0, 17, 23}, Region{1, 7, 7, 3}})
        for (const int out_w : {1, 3, 7, 17, 24, 48})
            for (const int out_h : {1, 3, 7, 24}) {
                CAPTURE(r.x); CAPTURE(r.y); CAPTURE(r.w); CAPTURE(r.h); CAPTURE(out_w); CAPTURE(out_h);
                std::vector<AreaSpan> xs, ys;
                area_spans(r.w, out_w, xs);
                area_spans(r.h, out_h, ys);
                std::vector<float> expected(static_cast<std::size_t>(out_w) * out_h * 3);
                resample_area<3>(
                    xs, ys, [&](int x, int y, int c) { return image.pixel(r.x + x, r.y + y)[bgr[c]]; },
                    [&](int x, int y, int c, float v) { expected[(static_cast<std::size_t>(y) * out_w + x) * 3 + c] = v; });
                CHECK(area_rows(table, r.x, r.y, xs, ys, bgr) == expected);
            }
}

TEST_CASE("summed-area table: the resampling stays exact when the table's entries wrap past 2^32") {
    // A table of a large image holds sums above 2^32; they wrap, and a window's sum (differences
    // of four entries) must not notice. Shifting every entry by a constant close to 2^32 makes
    // them wrap without a 17-megapixel image.
    Image image(9, 6);
    for (std::size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<std::uint8_t>(i * 37 % 256);
    SummedAreaTable table;
    table.build(image);
    const SummedAreaTable plain = table;
    for (std::uint32_t& v : table.sums) v += 0xFFFFFF00u;
    std::vector<AreaSpan> xs, ys;
    area_spans(7, 3, xs);
    area_spans(4, 2, ys);
    const auto resampled = [&](const SummedAreaTable& t) { return area_rows(t, 2, 1, xs, ys, {0, 1, 2}); };
    // Output (0, 0), channel c: the mean of columns [0, 3) and rows [0, 2) of the region at (2, 1).
    for (int c = 0; c < 3; ++c) {
        float direct = 0;
        for (int y = 1; y < 3; ++y)
            for (int x = 2; x < 5; ++x) direct += image.pixel(x, y)[c];
        CHECK(resampled(plain)[c] == direct / 2 / 3);
    }
    CHECK(resampled(table) == resampled(plain));
}

TEST_CASE("bilinear resize: half-pixel centres, edges clamped") {
    // 4 -> 2 samples at source x = 0.5 and 2.5: the means of neighbours.
    ImageF half = resize_bilinear(ramp(4, 1), 2, 1);
    CHECK(half.pixel(0, 0)[0] == doctest::Approx(0.5));
    CHECK(half.pixel(1, 0)[0] == doctest::Approx(2.5));
    // 2 -> 4 samples at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    ImageF up = resize_bilinear(ramp(2, 1), 4, 1);
    CHECK(up.pixel(0, 0)[0] == doctest::Approx(0.0));
    CHECK(up.pixel(1, 0)[0] == doctest::Approx(0.25));
    CHECK(up.pixel(2, 0)[0] == doctest::Approx(0.75));
    CHECK(up.pixel(3, 0)[0] == doctest::Approx(1.0));
    // Same size is the identity.
    ImageF same = resize_bilinear(ramp(3, 3), 3, 3);
    CHECK(same.data == ramp(3, 3).data);
}

TEST_CASE("annotation draws the box outline and landmark dots, clipped to the image") {
    Image img(20, 20);
    Face f;
    f.box = {2, 3, 12, 15};
    f.landmarks = {{{5, 6}, {9, 6}, {7, 9}, {5, 12}, {9, 12}}};
    f.score = 0.9f;
    annotate(img, {f});
    CHECK(img.pixel(2, 3)[1] == 255);   // corner, green
    CHECK(img.pixel(12, 15)[1] == 255);
    CHECK(img.pixel(7, 3)[1] == 255);   // top edge
    CHECK(img.pixel(0, 0)[1] == 0);     // outside untouched
    CHECK(img.pixel(7, 9)[0] == 255);   // nose dot, magenta
    CHECK(img.pixel(7, 9)[2] == 255);
    Face outside = f;
    outside.box = {-50, -50, 100, 100};
    CHECK_NOTHROW(annotate(img, {outside}));
}
