// facet-detect: detect faces in images; write JSON, annotated PNGs and aligned crops.
//
// Exit status: 0 on success, 1 when an input (model, image, output path) is bad, 2 on a usage error.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <facet/facet.hpp>

#include "cli_common.hpp"

namespace {

using facet::cli::find_default_model;
using facet::cli::parse_int;
using facet::cli::parse_number;
using facet::cli::UsageError;

constexpr const char* kDefaultModel = "retinaface_mnet025_official.facet";
constexpr const char* kDefaultMtcnnModel = "mtcnn.facet";

constexpr const char* kDefaultRecognitionModel = "face_recognition.facet";
// The attribute models --attributes loads unless --age-gender-model / --expression-model name others.
constexpr const char* kDefaultAgeGenderModel = "age_gender.facet";
constexpr const char* kDefaultExpressionModel = "face_expression.facet";

// The landmark model --landmarks N loads.
const char* default_landmark_model(int points) { return points == 68 ? "face_landmark_68.facet" : "pfld_ghostone.facet"; }

const char* const kUsage = R"(usage: facet-detect [options] IMAGE...

Detects faces and prints them as JSON (to stdout unless --json names a file).

options:
  --detector NAME    retinaface (default) or mtcnn
  --model FILE       weight file (default: see below)
  --threads N        threads (default 1). With one image they share its detection (the
                     kernels' loops for RetinaFace, the pyramid's levels and the crops for
                     MTCNN); with several, each thread takes whole images, one at a time,
                     which scales better
  --json FILE|-      write JSON to FILE, or to stdout with - (default -)
  --annotate PATH    write the image with boxes and landmarks as PNG to PATH; with several
                     images PATH is a directory and each is written as NAME.png in it
  --crops DIR        write each face aligned to 112x112 as DIR/NAME_K.png
  --landmarks N      dense landmarks: 68 (face-api's face_landmark_68.facet) or 98
                     (PFLD-GhostOne, pfld_ghostone.facet), looked up as the default model: each
                     face gets "landmarks68" (or "landmarks98") in image pixels and "head_pose"
                     (yaw, pitch, roll in degrees), the points are drawn by --annotate, and
                     --crops aligns on them
  --landmark-model FILE
                     the same with another 98- or 68-point landmark model (a graph file, e.g.
                     converted by onnx2facet or pth2facet's pfld recipe)
  --embed            each face gets "embedding": its 128-d descriptor from face-api's face
                     recognition network (face_recognition.facet, looked up as the default
                     model); two faces less than 0.6 apart are the same person (facet-compare)
  --recognition-model FILE
                     the same with another face recognition model (a graph file)
  --attributes       face-api's attribute nets on each face: "age" (years), "gender":
                     {"label": "male" or "female", "probability"} and "expression": {label:
                     probability} for neutral, happy, sad, angry, fearful, disgusted, surprised
  --age-gender-model FILE, --expression-model FILE
                     the attribute models (default age_gender.facet and face_expression.facet,
                     looked up as the default model); with --attributes only
  -h, --help         this help

retinaface only:
  --threshold T      keep faces scoring above T (default 0.5)
  --nms IOU          NMS overlap threshold (default 0.4)
  --top-k N          candidates kept before NMS (default 5000)
  --max-faces N      faces kept after NMS (default 750)
  --max-side N       shrink images so the longer side is at most N before detection,
                     results are mapped back to the original pixels; 0 = never (default 640)

mtcnn only (defaults from the weight file; upstream's are those below):
  --min-face PX      smallest face looked for, in pixels: the image pyramid starts at
                     12/PX (default 20)
  --factor F         scale from one pyramid level to the next, in (0, 1) (default 0.709)
  --thresholds P,R,O face probability needed to pass P-Net, R-Net and O-Net
                     (default 0.6,0.7,0.7)

The default model is $FACET_MODEL if set, else )" "retinaface_mnet025_official.facet" R"( found in
$FACET_WEIGHTS_DIR, then in ../../weights and ../share/facet next to this executable.
With --detector mtcnn it is )" "mtcnn.facet" R"(, looked up in the same directories ($FACET_MODEL
names the RetinaFace default only).
One image gives one JSON object; several give an array of objects. Each object says the
detector's "precision" (fp32, or the weight file's: bf16, int8). Faces are listed
best first (retinaface) or largest first (mtcnn, as upstream).
With several images, one that cannot be read or processed does not stop the others: its
entry in the array is {"image": PATH, "error": MESSAGE}, the message also goes to stderr,
and the exit status is 1 once every image has run. Annotations and crops are named after the
images, so two images with the same name (a/x.jpg, b/x.jpg) are refused up front.
)";

struct Args {
    std::string detector = "retinaface";
    std::string model;
    facet::RetinaFaceOptions options; // RetinaFace's options, and the threads of either detector
    // MTCNN options given on the command line (the others come from the weight file).
    std::optional<double> min_face, factor;
    std::optional<std::array<float, 3>> thresholds;
    // The first option given that only one detector takes, to refuse it with the other.
    std::string retinaface_only_flag, mtcnn_only_flag;
    std::string json = "-";
    std::string annotate;
    std::string crops;
    int landmarks = 0; // --landmarks: 68 or 98, 0 when not given
    std::string landmark_model;
    bool embed = false; // --embed or --recognition-model
    std::string recognition_model;
    bool attributes = false; // --attributes
    std::string age_gender_model, expression_model;
    std::vector<std::string> images;
};

// A number strictly between 0 and 1.
double parse_fraction(const std::string& flag, const std::string& text) {
    const double v = parse_number(flag, text, 0, 1);
    if (v == 0 || v == 1) throw UsageError(flag + " wants a number strictly between 0 and 1, got '" + text + "'");
    return v;
}

// "P,R,O": three numbers in [0, 1].
std::array<float, 3> parse_thresholds(const std::string& flag, const std::string& text) {
    std::array<float, 3> t{};
    std::size_t start = 0;
    for (int i = 0; i < 3; ++i) {
        const std::size_t comma = text.find(',', start);
        if ((i < 2) != (comma != std::string::npos))
            throw UsageError(flag + " wants three numbers P,R,O (P-Net, R-Net, O-Net), got '" + text + "'");
        t[i] = static_cast<float>(parse_number(flag, text.substr(start, comma - start), 0, 1));
        start = comma + 1;
    }
    return t;
}

Args parse_args(int argc, char** argv) {
    Args a;
    facet::cli::ArgReader reader(argc, argv, kUsage, &a.images);
    for (std::string arg; reader.next(arg);) {
        if (arg == "--embed" || arg == "--attributes") { // the options without a value
            (arg == "--embed" ? a.embed : a.attributes) = true;
            continue;
        }
        const std::string value = reader.value();
        for (const char* flag : {"--threshold", "--nms", "--top-k", "--max-faces", "--max-side"})
            if (arg == flag && a.retinaface_only_flag.empty()) a.retinaface_only_flag = arg;
        for (const char* flag : {"--min-face", "--factor", "--thresholds"})
            if (arg == flag && a.mtcnn_only_flag.empty()) a.mtcnn_only_flag = arg;
        if (arg == "--detector") a.detector = value;
        else if (arg == "--model") a.model = value;
        else if (arg == "--threshold") a.options.score_threshold = static_cast<float>(parse_number(arg, value, 0, 1));
        else if (arg == "--nms") a.options.nms_iou = static_cast<float>(parse_number(arg, value, 0, 1));
        else if (arg == "--top-k") a.options.top_k = parse_int(arg, value, 1, 1000000);
        else if (arg == "--max-faces") a.options.max_faces = parse_int(arg, value, 1, 1000000);
        else if (arg == "--max-side") a.options.max_side = parse_int(arg, value, 0, facet::kMaxImageSide);
        else if (arg == "--threads") a.options.threads = parse_int(arg, value, 1, 256);
        else if (arg == "--min-face") a.min_face = parse_number(arg, value, 1, facet::kMaxImageSide);
        else if (arg == "--factor") a.factor = parse_fraction(arg, value);
        else if (arg == "--thresholds") a.thresholds = parse_thresholds(arg, value);
        else if (arg == "--json") a.json = value;
        else if (arg == "--annotate") a.annotate = value;
        else if (arg == "--crops") a.crops = value;
        else if (arg == "--landmark-model") a.landmark_model = value;
        else if (arg == "--recognition-model") {
            a.recognition_model = value;
            a.embed = true;
        }
        else if (arg == "--age-gender-model") a.age_gender_model = value;
        else if (arg == "--expression-model") a.expression_model = value;
        else if (arg == "--landmarks") {
            a.landmarks = parse_int(arg, value, 68, 98);
            if (a.landmarks != 68 && a.landmarks != 98) throw UsageError("--landmarks wants 68 or 98, got '" + value + "'");
        }
        else throw UsageError("unknown option " + arg);
    }
    if (a.images.empty()) throw UsageError("no image given");
    if (!a.attributes && !(a.age_gender_model.empty() && a.expression_model.empty()))
        throw UsageError(std::string(a.age_gender_model.empty() ? "--expression-model" : "--age-gender-model") +
                         " applies with --attributes only");
    if (a.detector != "retinaface" && a.detector != "mtcnn")
        throw UsageError("--detector must be retinaface or mtcnn, got '" + a.detector + "'");
    if (a.detector == "mtcnn" && !a.retinaface_only_flag.empty())
        throw UsageError(a.retinaface_only_flag + " applies to --detector retinaface only (mtcnn takes --min-face, --factor, --thresholds)");
    if (a.detector == "retinaface" && !a.mtcnn_only_flag.empty())
        throw UsageError(a.mtcnn_only_flag + " applies to --detector mtcnn only");
    return a;
}

// "dir/photo.jpg" -> "photo"
std::string stem(const std::string& path) {
    const std::size_t slash = path.find_last_of('/');
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    const std::size_t dot = name.find_last_of('.');
    return dot == std::string::npos || dot == 0 ? name : name.substr(0, dot);
}

void ensure_directory(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw facet::Error(dir + ": cannot create directory: " + std::strerror(errno));
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw facet::Error(dir + ": not a directory");
}

// Writes the JSON to stdout or to the file --json names.
void write_json(const Args& args, const std::string& json) {
    if (args.json == "-")
        std::cout << json;
    else
        facet::write_file(args.json, json, "JSON");
}

// Refuses, before any work, images whose outputs would overwrite each other: --annotate with
// several images and --crops name their files after the image's name alone.
void check_distinct_output_names(const Args& args) {
    const char* flag = args.images.size() > 1 && !args.annotate.empty() ? "--annotate" : !args.crops.empty() ? "--crops" : nullptr;
    if (!flag) return;
    std::map<std::string, const std::string*> first_with;
    for (const std::string& path : args.images) {
        const auto [it, added] = first_with.emplace(stem(path), &path);
        if (!added)
            throw facet::Error(*it->second + " and " + path + " would write the same " + flag + " files (named '" + it->first +
                               "'): give the images distinct names");
    }
}

// One thread's models: a detector and, when asked for, a landmark model (each keeps the scratch
// memory of its calls, so threads working at once need their own).
struct Models {
    std::function<std::vector<facet::Face>(const facet::Image&)> detect;
    std::string precision; // the detector's weights: "fp32", or the file's "precision" ("bf16", "int8")
    std::shared_ptr<facet::FaceLandmarker> landmarker;
    std::shared_ptr<facet::FaceRecognizer> recognizer;
    std::shared_ptr<facet::AgeGender> age_gender;
    std::shared_ptr<facet::FaceExpression> expression;
};

// `copies` sets of the models the arguments ask for, each running `threads` threads inside a
// call; the weights are loaded once and shared.
std::vector<Models> load_models(const Args& args, int copies, int threads) {
    std::vector<Models> models(static_cast<std::size_t>(copies));
    if (args.detector == "mtcnn") {
        const auto model = facet::MtcnnModel::from_file(args.model.empty() ? find_default_model(kDefaultMtcnnModel, false) : args.model);
        facet::MtcnnOptions options = model->defaults();
        if (args.min_face) options.min_face = *args.min_face;
        if (args.factor) options.factor = *args.factor;
        if (args.thresholds) options.thresholds = *args.thresholds;
        options.threads = threads;
        for (Models& m : models) {
            auto mtcnn = std::make_shared<facet::Mtcnn>(model, options);
            m.detect = [mtcnn](const facet::Image& image) { return mtcnn->detect(image); };
            m.precision = model->precision;
        }
    } else {
        facet::RetinaFaceOptions options = args.options;
        options.threads = threads;
        const auto model = facet::RetinaFaceModel::from_file(args.model.empty() ? find_default_model(kDefaultModel, true) : args.model);
        for (Models& m : models) {
            auto retinaface = std::make_shared<facet::RetinaFace>(model, options);
            m.detect = [retinaface](const facet::Image& image) { return retinaface->detect(image); };
            m.precision = model->precision;
        }
    }
    // Dense landmarks: each face of an image in turn through the network (a batch of one).
    if (!args.landmark_model.empty() || args.landmarks) {
        const std::string path = args.landmark_model.empty() ? find_default_model(default_landmark_model(args.landmarks), false) : args.landmark_model;
        const auto model = facet::GraphModel::from_file(path);
        for (Models& m : models) m.landmarker = std::make_shared<facet::FaceLandmarker>(model, facet::default_kernel_set(), threads);
        const int points = models.front().landmarker->points();
        if (args.landmarks && points != args.landmarks)
            throw facet::Error(path + " gives " + std::to_string(points) + " landmarks, not the " + std::to_string(args.landmarks) +
                               " --landmarks asks for");
    }
    // Face descriptors: each face of an image in turn through the network.
    if (args.embed) {
        const auto model = facet::GraphModel::from_file(
            args.recognition_model.empty() ? find_default_model(kDefaultRecognitionModel, false) : args.recognition_model);
        for (Models& m : models) m.recognizer = std::make_shared<facet::FaceRecognizer>(model, facet::default_kernel_set(), threads);
    }
    // Attributes: loaded once, a clone (its own buffers) per copy.
    if (args.attributes) {
        const auto path = [](const std::string& given, const char* fallback) { return given.empty() ? find_default_model(fallback, false) : given; };
        const facet::AgeGender age_gender(path(args.age_gender_model, kDefaultAgeGenderModel), facet::default_kernel_set(), threads);
        const facet::FaceExpression expression(path(args.expression_model, kDefaultExpressionModel), facet::default_kernel_set(), threads);
        for (Models& m : models) {
            m.age_gender = std::make_shared<facet::AgeGender>(age_gender.clone());
            m.expression = std::make_shared<facet::FaceExpression>(expression.clone());
        }
    }
    return models;
}

// Detects the faces of one image, writes its crops and annotation, and returns its JSON object.
std::string process_image(const Args& args, Models& models, const std::string& path) {
    facet::Image image = facet::load_image(path);
    const std::vector<facet::Face> faces = models.detect(image);
    facet::FaceDetails details;
    details.precision = models.precision;
    if (models.landmarker) details.dense = models.landmarker->landmarks(image, faces);
    for (const facet::LandmarkPoints& points : details.dense)
        details.poses.push_back(facet::estimate_head_pose(points, image.width, image.height));
    if (models.recognizer)
        for (const facet::Face& face : faces) details.embeddings.push_back(models.recognizer->embed(image, face));
    if (models.age_gender)
        for (const facet::Face& face : faces) {
            facet::FaceAttributes& a = details.attributes.emplace_back();
            const facet::AgeGenderEstimate estimate = models.age_gender->estimate(image, face);
            a.has_age_gender = true;
            a.age = estimate.age;
            a.gender = estimate.gender;
            a.gender_probability = estimate.gender_probability;
            const std::vector<float> probabilities = models.expression->probabilities(image, face);
            for (std::size_t k = 0; k < probabilities.size(); ++k) a.expression.emplace_back(models.expression->labels()[k], probabilities[k]);
        }
    const std::vector<facet::LandmarkPoints>& dense = details.dense;
    std::string json = facet::faces_to_json(path, image.width, image.height, faces, "\n", details);
    if (!args.crops.empty())
        for (std::size_t k = 0; k < faces.size(); ++k) {
            // Aligned on the dense landmarks' eyes, nose and mouth when there are some: they
            // are more precise than the detector's five points.
            facet::Face aligned = faces[k];
            if (!dense.empty()) aligned.landmarks = facet::alignment_points(dense[k]);
            facet::write_png(args.crops + "/" + stem(path) + "_" + std::to_string(k) + ".png", facet::align_face(image, aligned));
        }
    if (!args.annotate.empty()) {
        facet::annotate(image, faces);
        facet::annotate_landmarks(image, faces, dense);
        facet::write_png(args.images.size() > 1 ? args.annotate + "/" + stem(path) + ".png" : args.annotate, image);
    }
    return json;
}

int run(const Args& args) {
    const bool several = args.images.size() > 1;
    check_distinct_output_names(args);
    // --threads: one image shares them inside its detection; several images take one thread each.
    const int images_at_once = several ? std::min<int>(args.options.threads, static_cast<int>(args.images.size())) : 1;
    std::vector<Models> models = load_models(args, images_at_once, several ? 1 : args.options.threads);
    if (several && !args.annotate.empty()) ensure_directory(args.annotate);
    if (!args.crops.empty()) ensure_directory(args.crops);

    if (!several) {
        // One image: its error is the run's (a message and exit 1, no JSON), as for a bad model.
        const std::string json = process_image(args, models.front(), args.images.front()) + "\n";
        write_json(args, json);
        return 0;
    }
    const auto results = facet::run_batch(models, static_cast<int>(args.images.size()),
                                          [&](Models& m, int i) { return process_image(args, m, args.images[static_cast<std::size_t>(i)]); });
    std::string json = "[\n";
    int failed = 0;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (i) json += ",\n";
        if (results[i].ok()) {
            json += results[i].value;
            continue;
        }
        ++failed;
        std::cerr << "facet-detect: " << results[i].error << "\n";
        json += "{\"image\": ";
        facet::json::write_string(json, args.images[i]);
        json += ", \"error\": ";
        facet::json::write_string(json, results[i].error);
        json += "}";
    }
    json += "\n]\n";
    write_json(args, json);
    return failed ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) { return facet::cli::tool_main("facet-detect", argc, argv, parse_args, run); }
