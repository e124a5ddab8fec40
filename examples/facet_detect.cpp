// facet-detect: detect faces in images; write JSON, annotated PNGs and aligned crops.
//
// Exit status: 0 on success, 1 when an input (model, image, output path) is bad, 2 on a usage error.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <facet/facet.hpp>

namespace {

constexpr const char* kDefaultModel = "retinaface_mnet025_official.facet";

const char* const kUsage = R"(usage: facet-detect [options] IMAGE...

Detects faces and prints them as JSON (to stdout unless --json names a file).

options:
  --detector NAME    retinaface (default) or mtcnn
  --model FILE       weight file (default: see below)
  --threshold T      keep faces scoring above T (default 0.5)
  --nms IOU          NMS overlap threshold (default 0.4)
  --top-k N          candidates kept before NMS (default 5000)
  --max-faces N      faces kept after NMS (default 750)
  --max-side N       shrink images so the longer side is at most N before detection,
                     results are mapped back to the original pixels; 0 = never (default 640)
  --threads N        threads inside the kernels (default 1)
  --json FILE|-      write JSON to FILE, or to stdout with - (default -)
  --annotate PATH    write the image with boxes and landmarks as PNG to PATH; with several
                     images PATH is a directory and each is written as NAME.png in it
  --crops DIR        write each face aligned to 112x112 as DIR/NAME_K.png
  -h, --help         this help

The default model is $FACET_MODEL if set, else )" "retinaface_mnet025_official.facet" R"( found in
$FACET_WEIGHTS_DIR, then in ../../weights and ../share/facet next to this executable.
One image gives one JSON object; several give an array of objects.
)";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Args {
    std::string detector = "retinaface";
    std::string model;
    facet::RetinaFaceOptions options;
    std::string json = "-";
    std::string annotate;
    std::string crops;
    std::vector<std::string> images;
};

double parse_number(const std::string& flag, const std::string& text, double lo, double hi) {
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !(v >= lo && v <= hi))
        throw UsageError(flag + " wants a number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'");
    return v;
}

int parse_int(const std::string& flag, const std::string& text, int lo, int hi) {
    const double v = parse_number(flag, text, lo, hi);
    if (v != static_cast<int>(v)) throw UsageError(flag + " wants a whole number, got '" + text + "'");
    return static_cast<int>(v);
}

Args parse_args(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (arg.rfind("--", 0) != 0) {
            a.images.push_back(arg);
            continue;
        }
        if (i + 1 >= argc) throw UsageError(arg + " needs a value");
        const std::string value = argv[++i];
        if (arg == "--detector") a.detector = value;
        else if (arg == "--model") a.model = value;
        else if (arg == "--threshold") a.options.score_threshold = static_cast<float>(parse_number(arg, value, 0, 1));
        else if (arg == "--nms") a.options.nms_iou = static_cast<float>(parse_number(arg, value, 0, 1));
        else if (arg == "--top-k") a.options.top_k = parse_int(arg, value, 1, 1000000);
        else if (arg == "--max-faces") a.options.max_faces = parse_int(arg, value, 1, 1000000);
        else if (arg == "--max-side") a.options.max_side = parse_int(arg, value, 0, facet::kMaxImageSide);
        else if (arg == "--threads") a.options.threads = parse_int(arg, value, 1, 256);
        else if (arg == "--json") a.json = value;
        else if (arg == "--annotate") a.annotate = value;
        else if (arg == "--crops") a.crops = value;
        else throw UsageError("unknown option " + arg);
    }
    if (a.images.empty()) throw UsageError("no image given");
    if (a.detector == "mtcnn") throw UsageError("--detector mtcnn is not available in this version of facet yet");
    if (a.detector != "retinaface") throw UsageError("--detector must be retinaface or mtcnn, got '" + a.detector + "'");
    return a;
}

bool file_exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string executable_dir() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return ".";
    std::string path(buf, static_cast<std::size_t>(n));
    return path.substr(0, path.find_last_of('/'));
}

std::string find_default_model() {
    if (const char* env = std::getenv("FACET_MODEL"); env && *env) return env;
    std::vector<std::string> candidates;
    if (const char* dir = std::getenv("FACET_WEIGHTS_DIR"); dir && *dir) candidates.push_back(std::string(dir) + "/" + kDefaultModel);
    const std::string exe = executable_dir();
    candidates.push_back(exe + "/../../weights/" + kDefaultModel);
    candidates.push_back(exe + "/../share/facet/" + kDefaultModel);
    for (const auto& c : candidates)
        if (file_exists(c)) return c;
    std::string msg = std::string("no model given and ") + kDefaultModel + " not found; looked in:";
    for (const auto& c : candidates) msg += "\n  " + c;
    throw facet::Error(msg + "\n(run ./setup.sh to convert the weights, or pass --model FILE)");
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

int run(const Args& args) {
    facet::RetinaFace detector(args.model.empty() ? find_default_model() : args.model, args.options);
    const bool several = args.images.size() > 1;
    if (several && !args.annotate.empty()) ensure_directory(args.annotate);
    if (!args.crops.empty()) ensure_directory(args.crops);

    std::string json = several ? "[\n" : "";
    for (std::size_t i = 0; i < args.images.size(); ++i) {
        const std::string& path = args.images[i];
        facet::Image image = facet::load_image(path);
        const std::vector<facet::Face> faces = detector.detect(image);
        if (i) json += ",\n";
        json += facet::faces_to_json(path, image.width, image.height, faces);
        if (!args.crops.empty())
            for (std::size_t k = 0; k < faces.size(); ++k)
                facet::write_png(args.crops + "/" + stem(path) + "_" + std::to_string(k) + ".png", facet::align_face(image, faces[k]));
        if (!args.annotate.empty()) {
            facet::annotate(image, faces);
            facet::write_png(several ? args.annotate + "/" + stem(path) + ".png" : args.annotate, image);
        }
    }
    json += several ? "\n]\n" : "\n";
    if (args.json == "-") {
        std::cout << json;
    } else {
        std::ofstream out(args.json);
        if (!(out << json)) throw facet::Error(args.json + ": cannot write JSON");
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    Args args;
    try {
        args = parse_args(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "facet-detect: " << e.what() << "\n(see facet-detect --help)\n";
        return 2;
    }
    try {
        return run(args);
    } catch (const facet::Error& e) {
        std::cerr << "facet-detect: " << e.what() << "\n";
    } catch (const std::bad_alloc&) {
        std::cerr << "facet-detect: out of memory\n";
    }
    return 1;
}
