// The accuracy gate of the int8 RetinaFace (weights/retinaface_mnet025_official_int8.facet, made by
// setup.sh with facet-quantize) against its float32 source, on every instruction set, on the
// seven shared images: crowd, multiface and sample are the calibration images, selfie_group and
// the three portraits are held out (the split is fixed: the ONNX Runtime int8 peer uses it too).
//
// The gate is issue 19's, as for the bf16 file (detection_gate.hpp, ties included). The int8
// detector runs at threshold 0.3, so that a face at 0.51 in float32 and 0.49 in int8 counts as
// found with a score 0.02 off, not as lost. The test prints the worst figures per image (README,
// "int8 RetinaFace"); the file setup.sh made before (percentile 99.998, no face crops, no bias
// correction, every backbone stage int8) fails it on 6 of the 7 images.
//
// FACET_INT8_GATE_FILE=PATH gates another int8 file instead (a facet-quantize setting under trial).
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "detection_gate.hpp"
#include "image_variants.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

struct GateImage {
    const char* name;
    bool calibration; // one of the images setup.sh calibrates the file on
};
constexpr GateImage kImages[] = {{"crowd.jpg", true},
                                 {"multiface.jpg", true},
                                 {"sample.jpg", true},
                                 {"selfie_group.jpg", false},
                                 {"portrait_angelina_jolie.jpg", false},
                                 {"portrait_kate_siegel.jpg", false},
                                 {"portrait_paul_rudd.jpg", false}};

// The robustness report (image_variants.hpp): on AVX-512 setup's file meets the bounds on 20 of the
// 21 variants (darkened sample.jpg misses, score 0.033), the one setup.sh made before facet-quantize's
// face crops and bias correction on 6; the test asks kMinVariantsWithinBounds, one below.
constexpr int kMinVariantsWithinBounds = 19;

std::shared_ptr<const RetinaFaceModel> int8_model() {
    if (const char* trial = std::getenv("FACET_INT8_GATE_FILE")) return RetinaFaceModel::from_file(trial);
    return test::load_retinaface_model("retinaface_mnet025_official_int8.facet");
}

} // namespace

TEST_CASE("int8 RetinaFace keeps the float32 faces on every shared image and instruction set") {
    const auto fp32 = test::load_retinaface_model("retinaface_mnet025_official.facet");
    const auto int8 = int8_model();
    REQUIRE(fp32->precision == "fp32");
    REQUIRE(int8->precision == "int8");
    RetinaFaceOptions before_nms; // the fp32 candidates a tie may match (detection_gate.hpp, Ties)
    before_nms.nms_iou = 1.0f;
    RetinaFaceOptions searching;
    searching.score_threshold = test::kSearchThreshold;
    const test::DetectionGate gate; // issue 19's bounds
    for (const KernelSet* ks : test::all_kernel_sets()) {
        RetinaFace reference(fp32, {}, *ks), candidates(fp32, before_nms, *ks), quantized(int8, searching, *ks);
        for (const GateImage& gate_image : kImages) {
            const Image image = load_image(test::shared_path(std::string("upstream/images/") + gate_image.name));
            const std::vector<Face> fp32_faces = reference.detect(image), fp32_candidates = candidates.detect(image),
                                    int8_faces = quantized.detect(image);
            const test::GateReport r = test::compare_detections(fp32_faces, fp32_candidates, int8_faces, gate);
            CAPTURE(std::string(ks->isa));
            CAPTURE(std::string(gate_image.name));
            INFO(r.failures);
            CHECK(r.reference_faces > 0);
            CHECK(r.passed());
            MESSAGE(std::string(ks->isa) << " " << std::string(gate_image.name) << std::string(gate_image.calibration ? " (calibration)" : " (held out)")
                                         << ": " << r.found << "/" << r.reference_faces << " faces within issue 19's bounds ("
                                         << r.tied << " through a tie), worst IoU " << r.worst_iou << ", score " << r.worst_score
                                         << ", landmark " << r.worst_landmark << " of the box, " << r.extra_faces << " extra");
        }
    }
}

TEST_CASE("int8 RetinaFace on mirrored, darkened and cropped shared images (robustness report)") {
    RetinaFaceOptions searching;
    searching.score_threshold = test::kSearchThreshold;
    CHECK(test::variants_within_gate(test::load_retinaface_model("retinaface_mnet025_official.facet"), int8_model(), searching) >=
          kMinVariantsWithinBounds);
}
