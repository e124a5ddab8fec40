// RetinaFace from the bf16 weight file (converters/quantize_bf16.py, made by setup.sh) against the
// fp32 file on every shared image, on every instruction set: the accuracy gate of issue 19
// (detection_gate.hpp). AVX-512 runs the bf16 layers on the AVX512-BF16 kernels where the CPU has
// them; SSE4.1 and AVX2 run them on the fp32 kernels with the weights widened.
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <string>

#include "detection_gate.hpp"
#include "image_variants.hpp"
#include "test_util.hpp"

using namespace facet;

TEST_CASE("RetinaFace bf16 keeps the fp32 detections on every shared image, on every instruction set") {
    const auto fp32 = test::load_retinaface_model("retinaface_mnet025_official.facet");
    const auto bf16 = test::load_retinaface_model("retinaface_mnet025_official_bf16.facet");
    CHECK(fp32->precision == "fp32");
    REQUIRE(bf16->precision == "bf16");
    RetinaFaceOptions before_nms; // the fp32 candidates a tie may match (detection_gate.hpp, Ties)
    before_nms.nms_iou = 1.0f;
    bool ran_bf16_kernels = false;
    for (const KernelSet* ks : test::all_kernel_sets()) {
        // Not vacuous: the backbone's pointwise convs and the context modules' 64-channel 3x3 convs
        // are bf16, and run on the bf16 kernels where there are some.
        const PackedConv& pointwise = bf16->blocks.back().pw.fp32;
        REQUIRE(pointwise.bf16);
        CHECK((ks->conv_for(pointwise) == (ks->conv1x1_bf16 ? ks->conv1x1_bf16 : ks->conv1x1)));
        for (const auto& context : bf16->context) {
            const PackedConv& conv3x3 = context.conv3x3.fp32;
            REQUIRE(conv3x3.bf16);
            CHECK((ks->conv_for(conv3x3) == (ks->conv3x3_s1_winograd_bf16 ? ks->conv3x3_s1_winograd_bf16 : ks->conv3x3_s1_winograd)));
            CHECK_FALSE(context.conv7x7_2.fp32.bf16); // converters/quantize_bf16.py says why
        }
        ran_bf16_kernels = ran_bf16_kernels || ks->conv1x1_bf16;
        RetinaFace reference(fp32, {}, *ks), candidates(fp32, before_nms, *ks), detector(bf16, {}, *ks);
        for (const char* name : test::kGateImages) {
            const Image image = load_image(test::shared_path(std::string("upstream/images/") + name));
            const test::GateReport r = test::compare_detections(reference.detect(image), candidates.detect(image), detector.detect(image));
            CAPTURE(std::string(ks->isa));
            CAPTURE(std::string(name));
            INFO(r.failures);
            CHECK(r.reference_faces > 0);
            CHECK(r.passed());
            const std::string where = std::string(ks->isa) + (ks->conv1x1_bf16 ? " (bf16 kernels) " : " (widened) ") + name;
            MESSAGE(where << ": " << r.found << "/"
                            << r.reference_faces << " faces (" << r.tied << " through a tie), worst IoU " << r.worst_iou
                            << ", score " << r.worst_score << ", landmark " << r.worst_landmark << " of the box, "
                            << r.extra_faces << " extra");
        }
    }
    if (!ran_bf16_kernels) MESSAGE("no AVX512-BF16 on this CPU: only the widened path was checked");
}

// The robustness report (image_variants.hpp), the bf16 detector searching as the int8 one does
// (detection_gate.hpp, kSearchThreshold; at 0.5, faces near the threshold on either side count as
// lost, 3 of the variants with the file before the context modules were in bf16). Setup's file
// meets the bounds on all 21 variants (AVX-512, bf16 kernels), as that file did; with the context
// modules' 16 -> 16 convs in bf16 too, 18 (quantize_bf16.py keeps them float32 for that).
TEST_CASE("RetinaFace bf16 on mirrored, darkened and cropped shared images (robustness report)") {
    RetinaFaceOptions searching;
    searching.score_threshold = test::kSearchThreshold;
    CHECK(test::variants_within_gate(test::load_retinaface_model("retinaface_mnet025_official.facet"),
                                     test::load_retinaface_model("retinaface_mnet025_official_bf16.facet"), searching) >= 20);
}

TEST_CASE("detection gate: hand-made faces against each limit, and ties") {
    // A 100 x 100 face: landmarks may move 1.5 px, the score 0.03, the box keep IoU 0.9.
    Face ref;
    ref.box = {0, 0, 100, 100};
    ref.score = 0.9f;
    for (int n = 0; n < 5; ++n) ref.landmarks[n] = {20.0f * n, 50.0f};
    const std::vector<Face> reference{ref};
    Face same = ref;
    CHECK(test::compare_detections(reference, reference, {same}).passed());
    Face moved = ref;
    moved.box = {6, 0, 106, 100}; // IoU 94 / 106 = 0.887
    CHECK_FALSE(test::compare_detections(reference, reference, {moved}).passed());
    Face unsure = ref;
    unsure.score = 0.86f;
    CHECK_FALSE(test::compare_detections(reference, reference, {unsure}).passed());
    Face nose = ref;
    nose.landmarks[2][1] += 1.6f;
    const test::GateReport r = test::compare_detections(reference, reference, {nose});
    CHECK_FALSE(r.passed());
    CHECK(r.worst_landmark == doctest::Approx(0.016));
    CHECK(test::compare_detections(reference, reference, {}).found == 0);
    // A sure face where fp32 has none fails; a 0.55 one does not count.
    Face ghost = ref;
    ghost.box = {300, 300, 400, 400};
    ghost.score = 0.65f;
    CHECK(test::compare_detections(reference, reference, {same, ghost}).extra_faces == 1);
    ghost.score = 0.55f;
    CHECK(test::compare_detections(reference, reference, {same, ghost}).passed());
    // A tie: fp32's suppressed candidate scored within 0.03 of the kept one, the other detector kept it.
    Face tied = ref;
    tied.box = {2, 2, 102, 102};
    tied.score = 0.89f;
    tied.landmarks[2][1] += 5.0f;
    const test::GateReport t = test::compare_detections(reference, {ref, tied}, {tied});
    CHECK(t.passed());
    CHECK(t.tied == 1);
    // Not a tie when it scored 0.05 less.
    tied.score = 0.85f;
    CHECK_FALSE(test::compare_detections(reference, {ref, tied}, {tied}).passed());
}
