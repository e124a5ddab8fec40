// Benchmarks of graph models (ONNX imports, models/graph.hpp) and of the kernels they add, on every
// instruction set this CPU runs, one thread:
//
//   BM_PFLD_GhostOne_Face/<isa>      FaceLandmarker::landmarks on the golden face of
//                                    portrait_kate_siegel.jpg: crop, bicubic to 112 x 112, network,
//                                    98 points (what facet-detect --landmark-model pays per face)
//   BM_PFLD_GhostOne_Network/<isa>   GraphExecutor::run alone, on that face's crop
//   BM_PFLD_GhostOne_Network/<best isa>/threads:N[/neighbour]
//                                    the same on 1 and 2 threads, alone and while another process
//                                    keeps one core busy (noisy_neighbour.hpp)
//   BM_FaceLandmark68_Face/<isa>     the same for face-api's 68-point network (face_landmark_68.facet,
//   BM_FaceLandmark68_Network/<isa>  converters/tfjs2facet.py) on the same face
//   BM_PFLD_GhostOne_Face_Bf16/<isa> BM_..._Face with the bf16 weight files (pfld_ghostone_bf16.facet,
//   BM_FaceLandmark68_Face_Bf16/<isa> face_landmark_68_bf16.facet, converters/quantize_bf16.py): their
//                                    bf16 convs on the AVX512-BF16 kernels where the CPU has them,
//                                    widened to float32 elsewhere
//   BM_PFLD_GhostOne_Face_Int8/<isa> the same with the int8 weight files (pfld_ghostone_int8.facet,
//   BM_FaceLandmark68_Face_Int8/<isa> face_landmark_68_int8.facet, facet-quantize): their int8 convs
//                                    on the int8 kernels (VNNI where the CPU has it)
//   BM_FaceRecognizer/<isa>          FaceRecognizer::embed on that face's box (the 218 x 304 crop
//                                    tests/faceapi/recognition/kate_siegel_box.png): padded to a square,
//                                    bilinear to 150 x 150, face-api's ResNet (face_recognition.facet),
//                                    the 128-d descriptor (what facet-detect --embed pays per face;
//                                    bench/peers/recognition.py times face-api on the same crop)
//   BM_FaceRecognizer_Network/<isa>  GraphExecutor::run of the ResNet alone
//   BM_FaceExpression/<isa>          face-api's expression net (face_expression.facet) and age / gender
//   BM_AgeGender/<isa>               net (age_gender.facet) on the same face: face-api's crop of its box
//                                    (clip, pad to a square, bilinear to 112) and the network, one thread
//   BM_Faces_Landmarks68/<isa>       the whole pipeline on multiface.jpg (1200 x 630, six faces):
//                                    RetinaFace at its default 640 px (a VGA-sized frame), then every
//                                    face's 68 landmarks and head pose (facet-detect --landmarks 68)
//   BM_PFLD_Network/<file>/<isa>     GraphExecutor::run of PFLD converted from PyTorch (recipes pfld and
//                                    pfld-angles) at 112 x 112: pfld98 (98 landmarks) and pfld98_angles
//                                    (with the auxiliary net's angles); the randomly initialised
//                                    reference the build converts into <build>/pfld, as the time does
//                                    not depend on the weights
//   grouped_conv/<isa>/<h>x<w>x<cin>-><cout>/k<k>s<s>g<groups>
//                                    the grouped conv kernel: PFLD-GhostOne's 7 x 7 conv over its
//                                    whole 7 x 7 map, and grouped 3 x 3 convs of ResNeXt widths
//   avg_pool/<isa>/<h>x<w>x<c>/global PFLD-GhostOne's global average pools
//   pad_end/<h>x<w>x<c>-><c'>        zeros appended to a map (face_recognition's residualDown shortcuts;
//                                    one build for every instruction set, a copy)
//
// Inputs: weights/pfld_ghostone.facet, face_landmark_68.facet, their _bf16 and _int8 twins, face_recognition.facet,
// face_expression.facet and age_gender.facet (FACET_WEIGHTS_DIR overrides the directory; ./setup.sh makes them) and
// ../shared/upstream/images/portrait_kate_siegel.jpg (FACET_SHARED overrides ../shared); when one
// is missing the cases needing it report an error saying so and the others still run.
// Counters: FLOPS is 2 x the multiply-accumulates of the convolutions and dense layers (padded
// lanes not counted), bytes the input, output and packed weights a kernel must move; both are rates.
// bench/peers/run.py times ONNX Runtime on the same model in the same run (bench/README.md).
#include <benchmark/benchmark.h>
#include <facet/io/image.hpp>
#include <facet/kernels/map_copy.hpp>
#include <facet/models/attributes.hpp>
#include <facet/models/landmarks.hpp>
#include <facet/models/recognizer.hpp>
#include <facet/models/retinaface.hpp>
#include <facet/post/head_pose.hpp>

#include "noisy_neighbour.hpp"

#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

using namespace facet;

constexpr const char* kPfldFile = "pfld_ghostone.facet";
constexpr const char* kFaceLandmark68File = "face_landmark_68.facet";
constexpr const char* kPfldBf16File = "pfld_ghostone_bf16.facet";
constexpr const char* kFaceLandmark68Bf16File = "face_landmark_68_bf16.facet";
constexpr const char* kPfldInt8File = "pfld_ghostone_int8.facet";
constexpr const char* kFaceLandmark68Int8File = "face_landmark_68_int8.facet";
constexpr const char* kFaceRecognitionFile = "face_recognition.facet";
constexpr const char* kFaceExpressionFile = "face_expression.facet";
constexpr const char* kAgeGenderFile = "age_gender.facet";
constexpr const char* kImageFile = "upstream/images/portrait_kate_siegel.jpg";
// The golden face's box (../shared/golden/pfld_ghostone_kate_siegel.json): a 307-pixel crop.
constexpr std::array<float, 4> kFaceBox{542.745f, 113.519f, 763.93f, 420.059f};

using Rate = benchmark::Counter;
Rate per_second(double per_iteration) { return Rate(per_iteration, Rate::kIsIterationInvariantRate, Rate::kIs1000); }

std::string env_or(const char* name, const std::string& fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::string(value) : fallback;
}

// Multiply-accumulates of one run, from the loaded model's ops and value shapes.
double graph_macs(const GraphModel& m) {
    double macs = 0;
    for (const GraphOp& op : m.ops()) {
        const GraphValue& out = m.values()[op.output];
        const double pixels = static_cast<double>(out.h) * out.w;
        switch (op.kind) {
        case GraphOp::Kind::conv: macs += pixels * op.conv.cout() * op.conv.cin() * op.conv.k() * op.conv.k(); break;
        case GraphOp::Kind::depthwise: macs += pixels * op.depthwise.c * 9; break;
        case GraphOp::Kind::grouped_conv: {
            const ConvGeometry& g = op.grouped.geometry;
            macs += pixels * op.grouped.cout * (op.grouped.cin / g.groups) * g.kernel_h * g.kernel_w;
            break;
        }
        case GraphOp::Kind::dense: macs += static_cast<double>(op.dense.cin) * op.dense.cout; break;
        default: break;
        }
    }
    return macs;
}

struct LandmarkInputs {
    std::shared_ptr<const GraphModel> model;
    Image image;
    double flops = 0;
    std::string error; // non-empty: the model's cases skip with this message
};

// The model in weights/`file` and the image, loaded once (benchmarks run one at a time).
const LandmarkInputs& landmark_inputs(const std::string& file) {
    static std::map<std::string, LandmarkInputs> loaded;
    if (const auto it = loaded.find(file); it != loaded.end()) return it->second;
    return loaded[file] = [&] {
        LandmarkInputs in;
        const std::string model_path = env_or("FACET_WEIGHTS_DIR", FACET_SOURCE_DIR "/weights") + "/" + file;
        const std::string image_path = env_or("FACET_SHARED", FACET_SOURCE_DIR "/../shared") + "/" + kImageFile;
        if (!std::ifstream(model_path).good()) {
            in.error = model_path + " not found: run ./setup.sh to convert the weights (or set FACET_WEIGHTS_DIR)";
            return in;
        }
        try {
            in.model = GraphModel::from_file(model_path);
            in.image = load_image(image_path);
            in.flops = 2 * graph_macs(*in.model);
        } catch (const std::exception& e) {
            in.model.reset();
            in.error = e.what();
        }
        return in;
    }();
}

// Crop, resize, network and points for one face. The untimed first call sizes the buffers.
void bm_face(benchmark::State& state, const KernelSet* kernels, const char* file) {
    const LandmarkInputs& in = landmark_inputs(file);
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    FaceLandmarker landmarker(in.model, *kernels);
    benchmark::DoNotOptimize(landmarker.landmarks(in.image, kFaceBox));
    for (auto _ : state) benchmark::DoNotOptimize(landmarker.landmarks(in.image, kFaceBox));
    state.counters["FLOPS"] = per_second(in.flops);
}

// The network alone, on the face's crop.
void bm_network(benchmark::State& state, const KernelSet* kernels, const char* file, int threads, bool neighbour) {
    const LandmarkInputs& in = landmark_inputs(file);
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    FaceLandmarker landmarker(in.model, *kernels);
    landmarker.landmarks(in.image, kFaceBox);
    GraphExecutor net(in.model, *kernels, threads);
    net.set_input(landmarker.last_crop());
    std::optional<bench::NoisyNeighbour> busy;
    if (neighbour) busy.emplace();
    net.run();
    for (auto _ : state) net.run();
    state.counters["FLOPS"] = per_second(in.flops);
}

// Pad, resize, network and descriptor for one face: the golden face's box, cut out.
void bm_face_recognizer(benchmark::State& state, const KernelSet* kernels) {
    const LandmarkInputs& in = landmark_inputs(kFaceRecognitionFile);
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    static const Image crop = load_image(FACET_SOURCE_DIR "/tests/faceapi/recognition/kate_siegel_box.png");
    FaceRecognizer recognizer(in.model, *kernels);
    benchmark::DoNotOptimize(recognizer.embed(crop));
    for (auto _ : state) benchmark::DoNotOptimize(recognizer.embed(crop));
    state.counters["FLOPS"] = per_second(in.flops);
}

// The ResNet alone, on a random 150 x 150 input.
void bm_face_recognizer_network(benchmark::State& state, const KernelSet* kernels) {
    const LandmarkInputs& in = landmark_inputs(kFaceRecognitionFile);
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    GraphExecutor net(in.model, *kernels);
    Image image(net.model().input().w, net.model().input().h);
    std::mt19937 rng(7);
    for (std::uint8_t& v : image.rgb) v = static_cast<std::uint8_t>(rng());
    net.set_input(image);
    net.run();
    for (auto _ : state) net.run();
    state.counters["FLOPS"] = per_second(in.flops);
}

// One face's attributes: face-api's crop of the face and the network (`Net`: FaceExpression or AgeGender).
template <class Net>
void bm_attribute(benchmark::State& state, const KernelSet* kernels, const char* file) {
    const LandmarkInputs& in = landmark_inputs(file);
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    Net net(env_or("FACET_WEIGHTS_DIR", FACET_SOURCE_DIR "/weights") + "/" + file, *kernels);
    const auto estimate = [&] {
        if constexpr (std::is_same_v<Net, FaceExpression>) return net.probabilities(in.image, kFaceBox);
        else return net.estimate(in.image, kFaceBox);
    };
    benchmark::DoNotOptimize(estimate());
    for (auto _ : state) benchmark::DoNotOptimize(estimate());
    state.counters["FLOPS"] = per_second(in.flops);
}

// Detector + 68 landmarks + head pose for every face of a frame.
void bm_faces_landmarks68(benchmark::State& state, const KernelSet* kernels) {
    const LandmarkInputs& in = landmark_inputs(kFaceLandmark68File);
    if (!in.error.empty()) return state.SkipWithError(in.error.c_str());
    const std::string detector_path = env_or("FACET_WEIGHTS_DIR", FACET_SOURCE_DIR "/weights") + "/retinaface_mnet025_official.facet";
    if (!std::ifstream(detector_path).good()) return state.SkipWithError((detector_path + " not found: run ./setup.sh").c_str());
    const Image frame = load_image(env_or("FACET_SHARED", FACET_SOURCE_DIR "/../shared") + "/upstream/images/multiface.jpg");
    RetinaFace detector(RetinaFaceModel::from_file(detector_path), RetinaFaceOptions{}, *kernels);
    FaceLandmarker landmarker(in.model, *kernels);
    std::size_t faces = 0;
    const auto analyse = [&] {
        const std::vector<Face> found = detector.detect(frame);
        for (const Face& face : found)
            benchmark::DoNotOptimize(estimate_head_pose(landmarker.landmarks(frame, face.box), frame.width, frame.height));
        faces = found.size();
    };
    analyse();
    for (auto _ : state) analyse();
    state.counters["faces"] = static_cast<double>(faces);
}

// PFLD converted from PyTorch, on a random 112 x 112 image.
void bm_pfld_network(benchmark::State& state, const KernelSet* kernels, const std::string& file) {
    const std::string path = std::string(FACET_BINARY_DIR) + "/pfld/" + file;
    if (!std::ifstream(path).good())
        return state.SkipWithError((path + " not found: build the facet-pfld-reference target").c_str());
    const auto model = GraphModel::from_file(path);
    GraphExecutor net(model, *kernels);
    Image image(112, 112);
    std::mt19937 rng(7);
    for (std::uint8_t& v : image.rgb) v = static_cast<std::uint8_t>(rng());
    net.set_input(image);
    net.run();
    for (auto _ : state) net.run();
    state.counters["FLOPS"] = per_second(2 * graph_macs(*model));
}

struct GroupedShape {
    int h, w, cin, cout, k, stride, groups;
};

// The kernel on random data (weights from a fixed seed).
void bm_grouped_conv(benchmark::State& state, const KernelSet* kernels, GroupedShape s) {
    ConvGeometry g;
    g.kernel_h = g.kernel_w = s.k;
    g.stride_h = g.stride_w = s.stride;
    g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = s.k == s.h ? 0 : (s.k - 1) / 2; // whole-map: no padding
    g.groups = s.groups;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> weights(static_cast<std::size_t>(s.cout) * (s.cin / s.groups) * s.k * s.k), bias(s.cout);
    for (float& v : weights) v = dist(rng);
    for (float& v : bias) v = dist(rng);
    const PackedGroupedConv packed = pack_grouped_conv(weights.data(), bias.data(), s.cout, s.cin, g, {Activation::relu, 0.0f});
    FeatureBuffer in(s.h, s.w, s.cin), out(g.out_h(s.h), g.out_w(s.w), s.cout);
    for (int y = 0; y < s.h; ++y)
        for (int x = 0; x < s.w; ++x)
            for (int c = 0; c < s.cin; ++c) in.map().at(y, x)[c] = dist(rng);
    for (auto _ : state) kernels->grouped_conv(in.map(), packed, out.map(), 1);
    const double out_pixels = static_cast<double>(out.map().h) * out.map().w;
    state.counters["FLOPS"] = per_second(2 * out_pixels * s.cout * (s.cin / s.groups) * s.k * s.k);
    state.counters["bytes"] = per_second(sizeof(float) * (static_cast<double>(s.h) * s.w * round_up(s.cin, kChannelAlign) +
                                                          out_pixels * packed.cout_pad + weights.size()));
}

void bm_global_avg_pool(benchmark::State& state, const KernelSet* kernels, int side, int channels) {
    PoolGeometry g;
    g.kernel_h = g.kernel_w = g.stride_h = g.stride_w = side;
    FeatureBuffer in(side, side, channels), out(1, 1, channels);
    for (auto _ : state) kernels->avg_pool(in.map(), g, out.map(), 1);
    state.counters["bytes"] = per_second(sizeof(float) * static_cast<double>(side) * side * round_up(channels, kChannelAlign));
}

void bm_pad_end(benchmark::State& state, int side, int channels, int padded_side, int padded_channels) {
    FeatureBuffer in(side, side, channels), out(padded_side, padded_side, padded_channels);
    for (auto _ : state) pad_end(in.map(), out.map());
    state.counters["bytes"] = per_second(sizeof(float) * (static_cast<double>(side) * side * round_up(channels, kChannelAlign) +
                                                          static_cast<double>(padded_side) * padded_side * round_up(padded_channels, kChannelAlign)));
}

std::string shape_name(int h, int w, int c) { return std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c); }

// benchmark_main has its own main(), so registration happens during static initialisation.
const bool kRegistered = [] {
    const GroupedShape grouped[] = {
        {7, 7, 32, 128, 7, 1, 1},    // PFLD-GhostOne's conv8: the whole 7 x 7 map into 128 features
        {56, 56, 128, 128, 3, 1, 32}, // ResNeXt-50 stage 1: 32 groups of 4
        {28, 28, 256, 256, 3, 1, 32}, // stage 2: 32 groups of 8
        {28, 28, 64, 64, 3, 2, 2},    // two groups, stride 2
    };
    const auto isas = supported_isas();
    if (!isas.empty()) {
        const KernelSet* best = &kernel_set(isas.back());
        for (auto [threads, neighbour] : {std::pair<int, bool>{2, false}, {1, true}, {2, true}})
            benchmark::RegisterBenchmark(("BM_PFLD_GhostOne_Network/" + std::string(best->isa) + "/threads:" +
                                          std::to_string(threads) + (neighbour ? "/neighbour" : ""))
                                             .c_str(),
                                         bm_network, best, kPfldFile, threads, neighbour)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
    }
    for (Isa isa : isas) {
        const KernelSet* ks = &kernel_set(isa);
        const std::string name = ks->isa;
        for (auto [model, file] : {std::pair<const char*, const char*>{"PFLD_GhostOne", kPfldFile}, {"FaceLandmark68", kFaceLandmark68File}}) {
            benchmark::RegisterBenchmark(("BM_" + std::string(model) + "_Face/" + name).c_str(), bm_face, ks, file)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
            benchmark::RegisterBenchmark(("BM_" + std::string(model) + "_Network/" + name).c_str(), bm_network, ks, file, 1, false)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        }
        for (auto [model, precision, file] : {std::tuple<const char*, const char*, const char*>{"PFLD_GhostOne", "Bf16", kPfldBf16File},
                                              {"FaceLandmark68", "Bf16", kFaceLandmark68Bf16File},
                                              {"PFLD_GhostOne", "Int8", kPfldInt8File},
                                              {"FaceLandmark68", "Int8", kFaceLandmark68Int8File}})
            benchmark::RegisterBenchmark(("BM_" + std::string(model) + "_Face_" + precision + "/" + name).c_str(), bm_face, ks, file)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_FaceRecognizer/" + name).c_str(), bm_face_recognizer, ks)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_FaceRecognizer_Network/" + name).c_str(), bm_face_recognizer_network, ks)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_FaceExpression/" + name).c_str(), bm_attribute<FaceExpression>, ks, kFaceExpressionFile)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_AgeGender/" + name).c_str(), bm_attribute<AgeGender>, ks, kAgeGenderFile)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_Faces_Landmarks68/" + name).c_str(), bm_faces_landmarks68, ks)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        for (const char* file : {"pfld98", "pfld98_angles"})
            benchmark::RegisterBenchmark(("BM_PFLD_Network/" + std::string(file) + "/" + name).c_str(), bm_pfld_network, ks,
                                         std::string(file) + ".facet")
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        for (const GroupedShape& s : grouped)
            benchmark::RegisterBenchmark(("grouped_conv/" + name + "/" + shape_name(s.h, s.w, s.cin) + "->" + std::to_string(s.cout) + "/k" +
                                          std::to_string(s.k) + "s" + std::to_string(s.stride) + "g" + std::to_string(s.groups))
                                             .c_str(),
                                         bm_grouped_conv, ks, s)
                ->Unit(benchmark::kMicrosecond);
        for (auto [side, channels] : {std::pair<int, int>{56, 64}, {28, 80}, {14, 96}, {7, 144}})
            benchmark::RegisterBenchmark(("avg_pool/" + name + "/" + shape_name(side, side, channels) + "/global").c_str(),
                                         bm_global_avg_pool, ks, side, channels)
                ->Unit(benchmark::kMicrosecond);
    }
    // face_recognition's shortcuts: 17x17x32 -> 64 channels, 3x3 -> 4x4 rows and columns (256 channels).
    for (auto [side, channels, padded_side, padded_channels] : {std::array<int, 4>{17, 32, 17, 64}, {8, 64, 8, 128}, {3, 256, 4, 256}})
        benchmark::RegisterBenchmark(("pad_end/" + shape_name(side, side, channels) + "->" + shape_name(padded_side, padded_side, padded_channels)).c_str(),
                                     bm_pad_end, side, channels, padded_side, padded_channels)
            ->Unit(benchmark::kMicrosecond);
    return true;
}();

} // namespace
