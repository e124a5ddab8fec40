// facet-video: face detection on a raw video stream (YUV4MPEG2 on stdin), one JSON line per frame
// on stdout, and the throughput and latency percentiles on stderr at the end.
//
//   ffmpeg -loglevel error -i clip.mp4 -f yuv4mpegpipe -pix_fmt yuv420p - | facet-video > faces.jsonl
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <facet/facet.hpp>
#include <facet/io/y4m.hpp>

#include "cli_common.hpp"

namespace {

const char* const kUsage = R"(usage: facet-video [options] < stream.y4m

Reads YUV4MPEG2 frames from stdin (ffmpeg ... -f yuv4mpegpipe -), detects faces in each, and
writes one JSON object per frame per line: {"frame": N, "ms": latency, "image", "width",
"height", "faces": [...]}. A summary (frames, fps, p50 / p99 latency) goes to stderr.

options:
  --model FILE      weight file (default: retinaface_mnet025_official.facet, found as by facet-detect)
  --threshold T     keep faces scoring above T (default 0.5)
  --max-side N      shrink frames so the longer side is at most N; 0 = never (default 640)
  --threads N       threads inside the kernels (default 1)
  --max-frames N    stop after N frames (default: the whole stream)
  -h, --help        this help
)";

struct Args {
    std::string model;
    facet::RetinaFaceOptions options;
    long max_frames = -1;
};

Args parse_args(int argc, char** argv) {
    using facet::cli::parse_int;
    using facet::cli::parse_number;
    Args a;
    facet::cli::ArgReader reader(argc, argv, kUsage);
    for (std::string arg; reader.next(arg);) {
        const std::string value = reader.value();
        if (arg == "--model") a.model = value;
        else if (arg == "--threshold") a.options.score_threshold = static_cast<float>(parse_number(arg, value, 0, 1));
        else if (arg == "--max-side") a.options.max_side = parse_int(arg, value, 0, facet::kMaxImageSide);
        else if (arg == "--threads") a.options.threads = parse_int(arg, value, 1, 256);
        else if (arg == "--max-frames") a.max_frames = parse_int(arg, value, 1, 1 << 30);
        else throw facet::cli::UsageError("unknown option " + arg);
    }
    return a;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const std::size_t i = static_cast<std::size_t>(std::lround(p * (v.size() - 1)));
    return v[i];
}

int run(const Args& args) {
    facet::RetinaFace detector(args.model.empty() ? facet::cli::find_default_model("retinaface_mnet025_official.facet") : args.model,
                               args.options);
    facet::Y4mReader reader(stdin);
    facet::Image frame;
    std::vector<double> latencies_ms;
    const auto start = std::chrono::steady_clock::now();
    for (long n = 0; (args.max_frames < 0 || n < args.max_frames) && reader.read(frame); ++n) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::vector<facet::Face> faces = detector.detect(frame);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        latencies_ms.push_back(ms);
        char head[64];
        std::snprintf(head, sizeof head, "{\"frame\": %ld, \"ms\": %.3f, ", n, ms);
        // The frame's fields first, then the faces object's own fields (its opening brace dropped).
        std::cout << head << facet::faces_to_json("stdin", frame.width, frame.height, faces, "").substr(1) << '\n';
    }
    std::cout.flush();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (latencies_ms.empty()) {
        std::cerr << "facet-video: no frames\n";
        return 0;
    }
    std::fprintf(stderr, "facet-video: %zu frames of %dx%d, %.1f fps, detect latency p50 %.2f ms, p99 %.2f ms\n",
                 latencies_ms.size(), reader.width(), reader.height(), latencies_ms.size() / seconds,
                 percentile(latencies_ms, 0.5), percentile(latencies_ms, 0.99));
    return 0;
}

} // namespace

int main(int argc, char** argv) { return facet::cli::tool_main("facet-video", argc, argv, parse_args, run); }
