// Writes the bad-input table (tests/bad_inputs.hpp) into a directory, for tests/test_bad_inputs.sh
// and as seeds for the fuzzers:
//   facet-make-bad-inputs OUT_DIR RETINAFACE.facet [PHOTO]
//       the files, and OUT_DIR/table.tsv (file, image|weights, exit status, message); with PHOTO,
//       also face.png and face.jpg, PHOTO shrunk to 192 px (seeds for fuzz/fuzz_detect.cpp)
//   facet-make-bad-inputs --markdown RETINAFACE.facet
//       the README's table
#include <facet/io/image.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "bad_inputs.hpp"

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        std::cerr << "usage: facet-make-bad-inputs OUT_DIR|--markdown RETINAFACE.facet [PHOTO]\n";
        return 2;
    }
    std::ifstream model(argv[2], std::ios::binary);
    const std::vector<std::uint8_t> good{std::istreambuf_iterator<char>(model), std::istreambuf_iterator<char>()};
    if (good.empty()) {
        std::cerr << argv[2] << ": cannot read\n";
        return 1;
    }
    try {
        auto table = facet::test::bad_images();
        for (auto& b : facet::test::bad_weight_files(good)) table.push_back(std::move(b));
        const std::size_t first_graph = table.size();
        for (auto& b : facet::test::bad_graph_files()) table.push_back(std::move(b));
        const std::string out = argv[1];
        if (out == "--markdown") {
            std::cout << "| input | file | facet-detect |\n|---|---|---|\n";
            for (const auto& b : table)
                std::cout << "| " << b.what << " | `" << b.file << "` | "
                          << (b.status == 0 ? std::string("accepted (converted to 8-bit RGB)")
                                            : "exit 1: `FILE: ..." + b.message + "`")
                          << " |\n";
            return 0;
        }
        std::ofstream tsv(out + "/table.tsv");
        for (const auto& b : table) {
            std::ofstream f(out + "/" + b.file, std::ios::binary);
            f.write(reinterpret_cast<const char*>(b.bytes.data()), static_cast<std::streamsize>(b.bytes.size()));
            const bool graph = static_cast<std::size_t>(&b - table.data()) >= first_graph;
            // An accepted graph file is no landmark model, so facet-detect cannot run it: a seed only.
            const char* kind = graph ? (b.status == 0 ? "graph_seed" : "graph") : b.weights ? "weights" : "image";
            tsv << b.file << '\t' << kind << '\t' << b.status << '\t' << b.message << '\n';
            if (!f || !tsv) {
                std::cerr << out << ": cannot write\n";
                return 1;
            }
        }
        if (argc == 4) {
            const facet::Image photo = facet::load_image(argv[3]);
            const double scale = 192.0 / std::max(photo.width, photo.height);
            const int w = std::max(1, static_cast<int>(std::lround(photo.width * scale)));
            const int h = std::max(1, static_cast<int>(std::lround(photo.height * scale)));
            const facet::ImageF small = facet::resize_area(facet::to_float(photo), w, h);
            facet::Image face(w, h);
            for (std::size_t i = 0; i < face.rgb.size(); ++i)
                face.rgb[i] = static_cast<std::uint8_t>(std::clamp(std::lround(small.data[i]), 0L, 255L));
            facet::write_png(out + "/face.png", face);
#ifdef FACET_WITH_LIBJPEG
            const auto jpeg = facet::test::jpeg(w, h, 3, false, face.rgb);
            std::ofstream(out + "/face.jpg", std::ios::binary).write(reinterpret_cast<const char*>(jpeg.data()),
                                                                     static_cast<std::streamsize>(jpeg.size()));
#endif
        }
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
    return 0;
}
