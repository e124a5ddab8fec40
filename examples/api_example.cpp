// The facet API in ten lines: load a model once, detect faces in any number of images.
#include <cstdio>

#include <facet/facet.hpp>

int main(int argc, char** argv) try {
    if (argc < 3) return std::fprintf(stderr, "usage: %s MODEL.facet IMAGE...\n", argv[0]), 2;
    facet::RetinaFace detector(argv[1]);                     // weights + scratch memory, reusable
    for (int i = 2; i < argc; ++i) {
        const facet::Image image = facet::load_image(argv[i]);
        for (const facet::Face& f : detector.detect(image))  // best first, in image pixels
            std::printf("%s: face %.3f at (%.0f, %.0f)-(%.0f, %.0f), nose (%.0f, %.0f)\n", argv[i], f.score, f.box[0],
                        f.box[1], f.box[2], f.box[3], f.landmarks[2][0], f.landmarks[2][1]);
    }
    return 0;
} catch (const facet::Error& e) {
    return std::fprintf(stderr, "%s\n", e.what()), 1;
}
