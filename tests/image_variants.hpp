// Images no weight file was tuned on, for the reduced-precision RetinaFace files' robustness
// reports (test_quantized.cpp, test_retinaface_bf16.cpp): each shared image mirrored, darkened
// (x 0.7) and cropped to its centre (an eighth off each side), 21 in all. The files' layer choices
// and int8 settings were made looking at the seven images themselves (README, "bf16 weights" and
// "int8 RetinaFace"); a choice that only just fits them shows here.
#pragma once
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "detection_gate.hpp"
#include "test_util.hpp"

namespace facet::test {

inline Image mirrored(const Image& in) {
    Image out(in.width, in.height);
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x) std::copy(in.pixel(in.width - 1 - x, y), in.pixel(in.width - 1 - x, y) + 3, out.pixel(x, y));
    return out;
}

inline Image darkened(const Image& in) {
    Image out(in.width, in.height);
    for (int y = 0; y < in.height; ++y)
        for (int x = 0; x < in.width; ++x)
            for (int c = 0; c < 3; ++c) out.pixel(x, y)[c] = static_cast<std::uint8_t>(std::lround(in.pixel(x, y)[c] * 0.7));
    return out;
}

inline Image centre_cropped(const Image& in) {
    const int x0 = in.width / 8, y0 = in.height / 8;
    Image out(in.width - 2 * x0, in.height - 2 * y0);
    for (int y = 0; y < out.height; ++y) std::copy(in.pixel(x0, y0 + y), in.pixel(x0, y0 + y) + 3 * out.width, out.pixel(0, y));
    return out;
}

struct ImageVariant {
    const char* name;
    Image (*make)(const Image&);
};
inline constexpr ImageVariant kImageVariants[] = {{"mirrored", mirrored}, {"darkened", darkened}, {"centre-cropped", centre_cropped}};

// How many of the 21 variants `candidate` (run with `options`: e.g. a lower threshold, see
// DetectionGate) detects within issue 19's bounds of `reference`, on the default kernel set; each
// miss is printed with its worst figures.
inline int variants_within_gate(const std::shared_ptr<const RetinaFaceModel>& reference_model,
                                const std::shared_ptr<const RetinaFaceModel>& candidate_model, const RetinaFaceOptions& options) {
    RetinaFaceOptions before_nms; // the reference candidates a tie may match (detection_gate.hpp, Ties)
    before_nms.nms_iou = 1.0f;
    RetinaFace reference(reference_model), candidates(reference_model, before_nms), candidate(candidate_model, options);
    int within = 0, variants = 0;
    for (const char* name : kGateImages) {
        const Image image = load_image(shared_path(std::string("upstream/images/") + name));
        for (const ImageVariant& v : kImageVariants) {
            const Image variant = v.make(image);
            const GateReport r = compare_detections(reference.detect(variant), candidates.detect(variant), candidate.detect(variant));
            ++variants;
            within += r.passed();
            if (!r.passed())
                MESSAGE(std::string(name) << " " << std::string(v.name) << ": " << r.found << "/" << r.reference_faces
                                          << " faces within issue 19's bounds, worst IoU " << r.worst_iou << ", score "
                                          << r.worst_score << ", landmark " << r.worst_landmark << ", " << r.extra_faces << " extra");
        }
    }
    MESSAGE(std::string(default_kernel_set().isa) << ": " << within << " of " << variants << " variants within issue 19's bounds");
    return within;
}

} // namespace facet::test
