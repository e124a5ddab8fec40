// libFuzzer harness: image decoding (libjpeg-turbo, stb_image) and RetinaFace detection on what
// decodes. The model is weights/retinaface_mnet025.facet ($FACET_FUZZ_MODEL overrides). Images
// are capped at 256 x 256 pixels (decode_image's max_pixels, checked from the header) so each run
// stays fast; the limit check itself is what is under test for larger headers.
#include <facet/facet.hpp>

#include <cstdint>
#include <cstdlib>
#include <memory>

namespace {

facet::RetinaFace& detector() {
    static std::unique_ptr<facet::RetinaFace> d = [] {
        const char* env = std::getenv("FACET_FUZZ_MODEL");
        const std::string path = env && *env ? env : FACET_SOURCE_DIR "/weights/retinaface_mnet025.facet";
        auto r = std::make_unique<facet::RetinaFace>(path);
        r->options().score_threshold = 0.05f; // low, so that decoding and NMS see candidates
        return r;
    }();
    return *d;
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    detector(); // load once, before the first input (a missing model aborts here, loudly)
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr long long kMaxPixels = 256 * 256;
    facet::Image image;
    try {
        image = facet::decode_image(data, size, "fuzz.img", kMaxPixels);
    } catch (const facet::Error&) {
        return 0;
    }
    if (image.width <= 0 || image.height <= 0 || static_cast<long long>(image.width) * image.height > kMaxPixels ||
        image.rgb.size() != static_cast<std::size_t>(image.width) * image.height * 3)
        std::abort(); // decode_image broke its own contract
    const auto faces = detector().detect(image);
    for (const facet::Face& f : faces)
        if (!(f.score > 0.0f && f.score <= 1.0f)) std::abort();
    return 0;
}
