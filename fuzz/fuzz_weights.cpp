// libFuzzer harness: the weight-file loader (WeightFile::from_bytes) and every model built from a
// file it accepts (RetinaFace, MTCNN, mesh decoder, imported graph), which read the metadata and
// tensors. The detectors and small graphs also run once, on a small fixed image: what a file's
// values do to the kernels (an int8 file's scales and zero points, a float file's extreme weights)
// is part of what a hostile file can reach.
//
// The input's first byte chooses a mode; the rest is the file. Mode bit 0 set: the header's file
// size and CRC-32 are made to agree with the file before it is parsed, so mutations get past those
// two checks into the metadata and the tensor table (seeds carry bit 0 set).
#include <facet/facet.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

// A 40 x 32 image with edges in every channel, for the detectors to run on.
const facet::Image& test_image() {
    static const facet::Image image = [] {
        facet::Image img(40, 32);
        for (int y = 0; y < img.height; ++y)
            for (int x = 0; x < img.width; ++x)
                for (int c = 0; c < 3; ++c)
                    img.rgb[(static_cast<std::size_t>(y) * img.width + x) * 3 + c] = static_cast<std::uint8_t>((x * 37 + y * 11 + c * 85) % 256);
        return img;
    }();
    return image;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t mode = data[0];
    std::vector<std::uint8_t> file(data + 1, data + size);
    if ((mode & 1) && file.size() >= facet::WeightFile::kHeaderSize) {
        const std::uint64_t n = file.size();
        std::memcpy(file.data() + 16, &n, 8);
        const std::uint32_t crc = facet::crc32(file.data() + 64, file.size() - 64);
        std::memcpy(file.data() + 52, &crc, 4);
    }
    try {
        const facet::WeightFile w = facet::WeightFile::from_bytes(file.data(), file.size(), "fuzz.facet");
        for (const facet::WeightTensor& t : w.tensors()) (void)t.shape_string();
        if (w.model_kind() == "retinaface") {
            facet::RetinaFace detector(std::make_shared<const facet::RetinaFaceModel>(w));
            (void)detector.detect(test_image());
        } else if (w.model_kind() == "mtcnn") {
            // The library's default options, not the file's: a file's min_face of 1 pixel would
            // make each run a pyramid of 480 x 384 levels, slowing the fuzzer, not testing more.
            facet::Mtcnn detector(std::make_shared<const facet::MtcnnModel>(w), facet::MtcnnOptions{});
            (void)detector.detect(test_image());
        } else if (w.model_kind() == "mesh_decoder") {
            facet::MeshDecoderModel model(w);
        } else if (w.model_kind() == "graph") {
            // An imported (ONNX) graph: validated at load; run once when its maps are small.
            const auto model = std::make_shared<const facet::GraphModel>(w);
            double floats = 0;
            for (const facet::GraphValue& v : model->values()) floats += (v.h + 2.0) * (v.w + 2.0) * v.cstride;
            if (floats < 4e6) {
                facet::GraphExecutor executor(model);
                executor.run();
            }
        }
    } catch (const facet::Error&) {
        // A refused file: what the loader must do with a bad one.
    }
    return 0;
}
