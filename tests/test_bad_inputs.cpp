// The bad-input table (tests/bad_inputs.hpp) in process: each image is decoded and detected on
// or refused with its message; each weight file is refused by the RetinaFace loader with its
// message. Plus the weight file truncated at every section boundary, and what the accepted
// images decode to.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <fstream>
#include <iterator>

#include "bad_inputs.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

std::vector<std::uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::uint8_t> retinaface_file() {
    const std::string path = test::weights_path("retinaface_mnet025.facet");
    INFO("weight file " << path << " (made by ./setup.sh)");
    auto bytes = read_bytes(path);
    REQUIRE(bytes.size() > 1000);
    return bytes;
}

// The message of the Error `fn` throws ("" if it throws none).
template <class Fn>
std::string error_of(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

const test::BadInput& entry(const std::vector<test::BadInput>& table, const std::string& file) {
    for (const auto& b : table)
        if (b.file == file) return b;
    FAIL("no entry " << file);
    return table[0];
}

Image decode(const test::BadInput& b) { return decode_image(b.bytes.data(), b.bytes.size(), b.file); }

} // namespace

TEST_CASE("bad-input table, images: accepted ones decode and run; refused ones give their message") {
    RetinaFace detector(RetinaFaceModel::from_file(test::weights_path("retinaface_mnet025.facet")));
    for (const test::BadInput& b : test::bad_images()) {
        CAPTURE(b.file);
        if (b.status == 0) {
            Image img;
            REQUIRE_NOTHROW(img = decode(b));
            CHECK(img.rgb.size() == static_cast<std::size_t>(img.width) * img.height * 3);
            CHECK(detector.detect(img).empty()); // no face in these
        } else {
            const std::string message = error_of([&] { decode(b); });
            CAPTURE(message);
            CHECK(message.rfind(b.file + ": ", 0) == 0);
            CHECK(message.find(b.message) != std::string::npos);
        }
    }
}

TEST_CASE("bad-input table, images: what grey, alpha, 16-bit, CMYK and progressive decode to") {
    const auto table = test::bad_images();
    const auto grey = test::pattern(32, 24, 1), grey_alpha = test::pattern(32, 24, 2), rgba = test::pattern(32, 24, 4);
    const auto rgb16 = test::pattern(32, 24, 6), grey16 = test::pattern(32, 24, 2);
    const Image g = decode(entry(table, "grey.png")), ga = decode(entry(table, "grey_alpha.png")), a = decode(entry(table, "rgba.png"));
    const Image g16 = decode(entry(table, "grey16.png")), c16 = decode(entry(table, "rgb16.png"));
    for (int i = 0; i < 32 * 24; ++i) {
        CAPTURE(i);
        for (int c = 0; c < 3; ++c) {
            REQUIRE(g.rgb[3 * i + c] == grey[i]);             // grey replicated
            REQUIRE(ga.rgb[3 * i + c] == grey_alpha[2 * i]);  // alpha dropped
            REQUIRE(a.rgb[3 * i + c] == rgba[4 * i + c]);     // alpha dropped
            REQUIRE(g16.rgb[3 * i + c] == grey16[2 * i]);     // high byte of the big-endian sample
            REQUIRE(c16.rgb[3 * i + c] == rgb16[6 * i + 2 * c]);
        }
    }
    const auto rgb8 = test::pattern(32, 24, 3);
    CHECK(decode(entry(table, "empty_idat.png")).rgb == rgb8);
    const Image one = decode(entry(table, "1x1.png"));
    CHECK(one.rgb == std::vector<std::uint8_t>{200, 100, 50});
    CHECK(decode(entry(table, "1x300.png")).height == 300);
    CHECK(decode(entry(table, "300x1.png")).width == 300);
#ifdef FACET_WITH_LIBJPEG
    // Lossy: within a few levels of what was written. CMYK (Adobe, inverted): R = C * K / 255.
    const auto rgb = test::pattern(32, 24, 3), cmyk = test::pattern(32, 24, 4);
    const Image base = decode(entry(table, "baseline.jpg")), prog = decode(entry(table, "progressive.jpg"));
    const Image grey_jpeg = decode(entry(table, "grey.jpg")), cmyk_jpeg = decode(entry(table, "cmyk.jpg"));
    REQUIRE(prog.width == 32);
    REQUIRE(prog.height == 24);
    int worst = 0;
    for (int i = 0; i < 32 * 24; ++i)
        for (int c = 0; c < 3; ++c) {
            worst = std::max(worst, std::abs(base.rgb[3 * i + c] - rgb[3 * i + c]));
            worst = std::max(worst, std::abs(prog.rgb[3 * i + c] - rgb[3 * i + c]));
            worst = std::max(worst, std::abs(grey_jpeg.rgb[3 * i + c] - grey[i]));
            worst = std::max(worst, std::abs(cmyk_jpeg.rgb[3 * i + c] - cmyk[4 * i + c] * cmyk[4 * i + 3] / 255));
        }
    CHECK(worst <= 8);
    // Bytes skipped before a marker (libjpeg's warning JWRN_EXTRANEOUS_DATA) leave the pixels alone.
    CHECK(decode(entry(table, "padded_before_eoi.jpg")).rgb == base.rgb);
#endif
}

TEST_CASE("bad-input table, graph files: extreme geometry is refused by name or computed without overflow") {
    for (const test::BadInput& b : test::bad_graph_files()) {
        CAPTURE(b.file);
        const auto load = [&] {
            return std::make_shared<const GraphModel>(WeightFile::from_bytes(b.bytes.data(), b.bytes.size(), b.file));
        };
        if (b.status != 0) {
            const std::string message = error_of(load);
            CAPTURE(message);
            CHECK(message.find(b.message) != std::string::npos);
            continue;
        }
        // The average pool: one input pixel under a window of 2^24 x 2^24 padded pixels, divided
        // by 2^48 (an int product wrapped it to 0: infinity).
        GraphExecutor net(load());
        Image ones(4, 4);
        std::fill(ones.rgb.begin(), ones.rgb.end(), std::uint8_t(1));
        net.set_input(ones);
        net.run();
        CHECK(net.output(0) == std::vector<float>(3, std::ldexp(1.0f, -48)));
    }
}

TEST_CASE("bad-input table, weight files: each refused by the RetinaFace loader with its message") {
    for (const test::BadInput& b : test::bad_weight_files(retinaface_file())) {
        CAPTURE(b.file);
        const std::string message =
            error_of([&] { RetinaFaceModel model(WeightFile::from_bytes(b.bytes.data(), b.bytes.size(), b.file)); });
        CAPTURE(message);
        CHECK(message.rfind(b.file + ": ", 0) == 0);
        CHECK(message.find(b.message) != std::string::npos);
    }
}

TEST_CASE("a weight file truncated at every section boundary is refused as truncated") {
    const auto good = retinaface_file();
    // The header's fields, the metadata, the table, and every tensor's data (start and end).
    std::vector<std::uint64_t> cuts = {0, 8, 12, 16, 24, 32, 40, 48, 52, 56, 63, 64};
    const std::uint64_t meta_end = test::read_u64(good, 24) + test::read_u64(good, 32), table = test::read_u64(good, 40);
    cuts.insert(cuts.end(), {meta_end - 1, meta_end, table, table + 1});
    std::uint32_t count;
    std::memcpy(&count, good.data() + 48, 4);
    std::uint64_t at = table;
    for (std::uint32_t i = 0; i < count; ++i) {
        cuts.push_back(at); // each table record
        const unsigned name_len = good[at] | good[at + 1] << 8, ndim = good[at + 2 + name_len + 1];
        at += 2 + name_len + 2 + 4u * ndim;
        const std::uint64_t offset = test::read_u64(good, at), nbytes = test::read_u64(good, at + 8);
        at += 16;
        cuts.insert(cuts.end(), {offset, offset + 1, offset + nbytes - 1, offset + nbytes});
    }
    cuts.push_back(at); // the end of the table
    int checked = 0;
    for (std::uint64_t cut : cuts) {
        if (cut >= good.size()) continue;
        CAPTURE(cut);
        const std::string message = error_of([&] { WeightFile::from_bytes(good.data(), cut, "cut.facet"); });
        CHECK((message.find("cut.facet: truncated or padded") == 0 || message.find("cut.facet: not a facet weight file (too short") == 0));
        // With the header's size and CRC made to agree with the cut, still refused (never a crash).
        if (cut >= 64) {
            std::vector<std::uint8_t> f(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut));
            test::put<std::uint64_t>(f, 16, f.size());
            test::refresh_crc(f);
            CHECK_THROWS_AS(WeightFile::from_bytes(f.data(), f.size(), "cut.facet"), Error);
        }
        ++checked;
    }
    CHECK(checked > 300);
}
