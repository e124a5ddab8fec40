// facet-compare: is it the same person? Face verification with face-api's face recognition network.
//
// Exit status: 0 when the comparison ran (same or different), 1 when an input (model, image,
// folder) is bad or an image has no face, 2 on a usage error.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

#include <facet/facet.hpp>

#include "cli_common.hpp"

namespace {

using facet::cli::find_default_model;
using facet::cli::parse_number;
using facet::cli::UsageError;

constexpr const char* kDefaultDetector = "retinaface_mnet025_official.facet";
constexpr const char* kDefaultRecognitionModel = "face_recognition.facet";

const char* const kUsage = R"(usage: facet-compare [options] A B
       facet-compare [options] --gallery DIR QUERY

Face verification. With two images, prints the distance between the descriptors of the best
(highest-scoring) face of each and "same" when it is below the threshold, else "different".
With --gallery, ranks every face of every JPEG and PNG image in DIR by its distance to the
best face of QUERY, nearest first, as JSON.

options:
  --threshold T      same person below this distance (default 0.6, face-api's and dlib's)
  --gallery DIR      the folder of images to search (not its subfolders)
  --model FILE       RetinaFace weight file (default: $FACET_MODEL, else )" "retinaface_mnet025_official.facet" R"()
  --recognition-model FILE
                     face recognition weight file (default: )" "face_recognition.facet" R"()
  -h, --help         this help

Default models are looked up in $FACET_WEIGHTS_DIR, then in ../../weights and ../share/facet
next to this executable. Exit status: 0 when the comparison ran, whatever its answer; 1 when a
model or image cannot be read or an image has no face; 2 on a usage error.
)";

struct Args {
    float threshold = facet::kSamePersonDistance;
    std::string gallery, model, recognition_model;
    std::vector<std::string> images;
};

Args parse_args(int argc, char** argv) {
    Args a;
    facet::cli::ArgReader reader(argc, argv, kUsage, &a.images);
    for (std::string arg; reader.next(arg);) {
        const std::string value = reader.value();
        if (arg == "--threshold") a.threshold = static_cast<float>(parse_number(arg, value, 0, 100));
        else if (arg == "--gallery") a.gallery = value;
        else if (arg == "--model") a.model = value;
        else if (arg == "--recognition-model") a.recognition_model = value;
        else throw UsageError("unknown option " + arg);
    }
    const std::size_t wanted = a.gallery.empty() ? 2 : 1;
    if (a.images.size() != wanted)
        throw UsageError(std::string(a.gallery.empty() ? "two images to compare" : "one query image with --gallery") + " wanted, got " +
                         std::to_string(a.images.size()));
    return a;
}

class Comparer {
public:
    explicit Comparer(const Args& args)
        : detector_(args.model.empty() ? find_default_model(kDefaultDetector, true) : args.model),
          recognizer_(args.recognition_model.empty() ? find_default_model(kDefaultRecognitionModel, false) : args.recognition_model) {}

    // Every face of the image at `path`, best first, with its descriptor.
    struct DescribedFace {
        facet::Face face;
        facet::FaceDescriptor descriptor;
    };
    std::vector<DescribedFace> faces(const std::string& path) {
        const facet::Image image = facet::load_image(path);
        std::vector<DescribedFace> out;
        for (const facet::Face& face : detector_.detect(image)) out.push_back({face, recognizer_.embed(image, face)});
        return out;
    }

    // The descriptor of the best face of `path`; an Error when it has none.
    facet::FaceDescriptor best_face(const std::string& path) {
        const std::vector<DescribedFace> found = faces(path);
        if (found.empty()) throw facet::Error(path + ": no face found");
        return found.front().descriptor;
    }

private:
    facet::RetinaFace detector_;
    facet::FaceRecognizer recognizer_;
};

// The JPEG and PNG files of `dir` (by extension, any case), sorted by name.
std::vector<std::string> gallery_images(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code error;
    if (!fs::is_directory(dir, error)) throw facet::Error(dir + ": not a directory (--gallery wants a folder of images)");
    std::vector<std::string> images;
    for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
        std::string extension = it->path().extension().string();
        std::transform(extension.begin(), extension.end(), extension.begin(), [](unsigned char c) { return std::tolower(c); });
        if ((extension == ".jpg" || extension == ".jpeg" || extension == ".png") && it->is_regular_file(error))
            images.push_back(it->path().string());
    }
    if (error) throw facet::Error(dir + ": cannot list the folder: " + error.message());
    if (images.empty()) throw facet::Error(dir + ": no JPEG or PNG images in the folder");
    std::sort(images.begin(), images.end());
    return images;
}

// --gallery: {"query", "threshold", "matches": [{"image", "face", "box", "score", "distance", "same"}],
// "errors": [{"image", "error"}]}, matches nearest first. An image that cannot be read is listed in
// "errors" (and on stderr) and makes the exit status 1; the others are still ranked.
int run_gallery(const Args& args, Comparer& comparer) {
    const facet::FaceDescriptor query = comparer.best_face(args.images.front());
    struct Match {
        std::string image;
        int face;
        facet::Face detection;
        float distance;
    };
    std::vector<Match> matches;
    std::vector<std::pair<std::string, std::string>> errors;
    for (const std::string& path : gallery_images(args.gallery)) {
        try {
            const auto found = comparer.faces(path);
            for (std::size_t k = 0; k < found.size(); ++k)
                matches.push_back({path, static_cast<int>(k), found[k].face, facet::FaceRecognizer::distance(query, found[k].descriptor)});
        } catch (const facet::Error& e) {
            std::cerr << "facet-compare: " << e.what() << "\n";
            errors.emplace_back(path, e.what());
        }
    }
    std::stable_sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) { return a.distance < b.distance; });
    std::string json = "{\"query\": ";
    facet::json::write_string(json, args.images.front());
    json += ", \"threshold\": ";
    facet::json::write_number(json, args.threshold, 4);
    json += ", \"matches\": [";
    for (std::size_t i = 0; i < matches.size(); ++i) {
        const Match& m = matches[i];
        json += i ? ",\n  {\"image\": " : "\n  {\"image\": ";
        facet::json::write_string(json, m.image);
        json += ", \"face\": " + std::to_string(m.face) + ", \"box\": [";
        for (int k = 0; k < 4; ++k) {
            if (k) json += ", ";
            facet::json::write_number(json, m.detection.box[k], 3);
        }
        json += "], \"score\": ";
        facet::json::write_number(json, m.detection.score, 5);
        json += ", \"distance\": ";
        facet::json::write_number(json, m.distance, 4);
        json += std::string(", \"same\": ") + (m.distance < args.threshold ? "true" : "false") + "}";
    }
    json += matches.empty() ? "], \"errors\": [" : "\n], \"errors\": [";
    for (std::size_t i = 0; i < errors.size(); ++i) {
        json += i ? ", {\"image\": " : "{\"image\": ";
        facet::json::write_string(json, errors[i].first);
        json += ", \"error\": ";
        facet::json::write_string(json, errors[i].second);
        json += "}";
    }
    std::cout << json << "]}\n";
    return errors.empty() ? 0 : 1;
}

int run(const Args& args) {
    Comparer comparer(args);
    if (!args.gallery.empty()) return run_gallery(args, comparer);
    const float distance = facet::FaceRecognizer::distance(comparer.best_face(args.images[0]), comparer.best_face(args.images[1]));
    char line[64];
    std::snprintf(line, sizeof line, "%.4f %s\n", distance, distance < args.threshold ? "same" : "different");
    std::cout << line;
    return 0;
}

} // namespace

int main(int argc, char** argv) { return facet::cli::tool_main("facet-compare", argc, argv, parse_args, run); }
