// facet-mesh: decode a latent code into a coloured 3D mesh with a mesh decoder; write it as PLY and
// OBJ, and optionally render it to a PNG (a small z-buffer rasteriser, so no 3D viewer is needed).
//
// Exit status: 0 on success, 1 when an input (model, latent file, output path) is bad, 2 on a usage error.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <facet/io/image.hpp>
#include <facet/models/mesh_decoder.hpp>

#include "cli_common.hpp"

namespace {

using facet::cli::parse_int;
using facet::cli::UsageError;


const char* const kUsage = R"(usage: facet-mesh --model FILE --out PREFIX [options]

Decodes a latent code with a mesh decoder (a facet file of model kind mesh_decoder, e.g.
build/mesh/k6_xyzrgb_full.facet, made by the build) and writes PREFIX.ply (ASCII PLY with
per-vertex colour) and PREFIX.obj (with "v x y z r g b" vertex colours).

options:
  --model FILE      the mesh decoder (required)
  --out PREFIX      output path without extension (required)
  --latent FILE     the latent code: whitespace-separated numbers, as many as the model takes
  --seed N          no --latent: draw the code from N(0, 1) with this seed (default 0)
  --offsets         the decoder outputs offsets: add xyz to the rest mesh (mesh.vertices) and
                    rgb to mid-grey (how the untrained demo decoders are best looked at)
  --png FILE        also render the mesh to FILE (orthographic, lit, vertex colours)
  --size N          PNG width and height in pixels (default 512)
  --threads N       threads inside the kernels (default 1)
  -h, --help        this help

Without rgb outputs (an xyz decoder) the mesh is light grey.
)";

struct Args {
    std::string model, out, latent, png;
    unsigned seed = 0;
    bool offsets = false;
    int size = 512;
    int threads = 1;
};

Args parse_args(int argc, char** argv) {
    Args a;
    facet::cli::ArgReader reader(argc, argv, kUsage);
    for (std::string arg; reader.next(arg);) {
        if (arg == "--offsets") {
            a.offsets = true;
            continue;
        }
        const std::string value = reader.value();
        if (arg == "--model") a.model = value;
        else if (arg == "--out") a.out = value;
        else if (arg == "--latent") a.latent = value;
        else if (arg == "--seed") a.seed = static_cast<unsigned>(parse_int(arg, value, 0, std::numeric_limits<int>::max()));
        else if (arg == "--png") a.png = value;
        else if (arg == "--size") a.size = parse_int(arg, value, 16, 8192);
        else if (arg == "--threads") a.threads = parse_int(arg, value, 1, 256);
        else throw UsageError("unknown option " + arg);
    }
    if (a.model.empty()) throw UsageError("no --model given");
    if (a.out.empty()) throw UsageError("no --out given");
    return a;
}

std::vector<float> read_latent(const std::string& path, int size) {
    std::ifstream in(path);
    if (!in) throw facet::Error(path + ": cannot open latent file");
    std::vector<float> latent;
    float v;
    while (in >> v) latent.push_back(v);
    if (!in.eof()) throw facet::Error(path + ": not a list of numbers");
    if (static_cast<int>(latent.size()) != size)
        throw facet::Error(path + ": has " + std::to_string(latent.size()) + " numbers, the model takes " + std::to_string(size));
    return latent;
}

std::vector<float> random_latent(unsigned seed, int size) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> latent(static_cast<std::size_t>(size));
    for (float& x : latent) x = normal(rng);
    return latent;
}

using Vec3 = std::array<float, 3>;

struct ColouredMesh {
    std::vector<Vec3> positions, colours; // colours in [0, 1]
    std::vector<std::array<int, 3>> faces;
};

// The decoder's output as a mesh: xyz as positions (or offsets from the rest mesh), rgb as colours.
ColouredMesh to_mesh(const facet::MeshDecoderModel& model, const std::vector<float>& decoded, bool offsets) {
    const int channels = model.output_channels();
    ColouredMesh mesh;
    mesh.faces = model.faces();
    for (int v = 0; v < model.vertex_count(); ++v) {
        const float* out = decoded.data() + static_cast<std::ptrdiff_t>(v) * channels;
        const float* rest = model.rest_vertices().data() + 3 * v;
        Vec3 p{}, c{0.8f, 0.8f, 0.8f};
        for (int k = 0; k < 3; ++k) {
            p[k] = out[k] + (offsets ? rest[k] : 0.0f);
            if (channels == 6) c[k] = std::clamp(out[3 + k] + (offsets ? 0.5f : 0.0f), 0.0f, 1.0f);
        }
        mesh.positions.push_back(p);
        mesh.colours.push_back(c);
    }
    return mesh;
}

int to_byte(float c) { return static_cast<int>(std::lround(c * 255.0f)); }

void write_ply(const std::string& path, const ColouredMesh& m) {
    std::ostringstream f;
    f << "ply\nformat ascii 1.0\ncomment facet-mesh\nelement vertex " << m.positions.size()
      << "\nproperty float x\nproperty float y\nproperty float z\n"
         "property uchar red\nproperty uchar green\nproperty uchar blue\n"
      << "element face " << m.faces.size() << "\nproperty list uchar int vertex_indices\nend_header\n";
    for (std::size_t v = 0; v < m.positions.size(); ++v)
        f << m.positions[v][0] << ' ' << m.positions[v][1] << ' ' << m.positions[v][2] << ' ' << to_byte(m.colours[v][0])
          << ' ' << to_byte(m.colours[v][1]) << ' ' << to_byte(m.colours[v][2]) << '\n';
    for (const auto& t : m.faces) f << "3 " << t[0] << ' ' << t[1] << ' ' << t[2] << '\n';
    facet::write_file(path, f.str(), "PLY");
}

void write_obj(const std::string& path, const ColouredMesh& m) {
    std::ostringstream f;
    f << "# facet-mesh: v x y z r g b (vertex colours in [0, 1])\n";
    for (std::size_t v = 0; v < m.positions.size(); ++v)
        f << "v " << m.positions[v][0] << ' ' << m.positions[v][1] << ' ' << m.positions[v][2] << ' ' << m.colours[v][0]
          << ' ' << m.colours[v][1] << ' ' << m.colours[v][2] << '\n';
    for (const auto& t : m.faces) f << "f " << t[0] + 1 << ' ' << t[1] + 1 << ' ' << t[2] + 1 << '\n';
    facet::write_file(path, f.str(), "OBJ");
}

Vec3 sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec3 cross(const Vec3& a, const Vec3& b) { return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]}; }

// Orthographic render seen from above-left-front (a fixed yaw and pitch, so no face of the mesh is
// seen edge-on), scaled to fit with a margin. Per pixel: the nearest triangle (z-buffer), its
// vertex colours interpolated, times ambient + diffuse light from the viewer's upper left.
facet::Image render(const ColouredMesh& m, int size) {
    const float yaw = 0.6f, pitch = 0.35f;
    std::vector<Vec3> view(m.positions.size());
    for (std::size_t v = 0; v < view.size(); ++v) {
        const Vec3& p = m.positions[v];
        const float x = std::cos(yaw) * p[0] + std::sin(yaw) * p[2], z = -std::sin(yaw) * p[0] + std::cos(yaw) * p[2];
        view[v] = {x, std::cos(pitch) * p[1] - std::sin(pitch) * z, std::sin(pitch) * p[1] + std::cos(pitch) * z};
    }
    Vec3 lo{1e30f, 1e30f, 1e30f}, hi{-1e30f, -1e30f, -1e30f};
    for (const Vec3& p : view)
        for (int k = 0; k < 3; ++k) lo[k] = std::min(lo[k], p[k]), hi[k] = std::max(hi[k], p[k]);
    const float scale = 0.9f * size / std::max({hi[0] - lo[0], hi[1] - lo[1], 1e-6f});
    for (Vec3& p : view) { // to pixels, y down; z grows towards the viewer
        p[0] = (p[0] - 0.5f * (lo[0] + hi[0])) * scale + 0.5f * size;
        p[1] = 0.5f * size - (p[1] - 0.5f * (lo[1] + hi[1])) * scale;
    }

    facet::Image image(size, size);
    std::fill(image.rgb.begin(), image.rgb.end(), std::uint8_t{40});
    std::vector<float> depth(static_cast<std::size_t>(size) * size, -std::numeric_limits<float>::infinity());
    const Vec3 light{-0.4f, 0.5f, 0.77f};
    for (const auto& t : m.faces) {
        const Vec3 &a = view[t[0]], &b = view[t[1]], &c = view[t[2]];
        const float area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
        if (std::fabs(area) < 1e-12f) continue;
        // Normal in view space with y up (pixels have y down, hence the sign of [1]).
        Vec3 n = cross(sub(b, a), sub(c, a));
        n[1] = -n[1];
        const float length = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        const float shade = 0.35f + 0.65f * std::fabs(n[0] * light[0] + n[1] * light[1] + n[2] * light[2]) / length;
        const int x0 = std::max(0, static_cast<int>(std::floor(std::min({a[0], b[0], c[0]}))));
        const int x1 = std::min(size - 1, static_cast<int>(std::ceil(std::max({a[0], b[0], c[0]}))));
        const int y0 = std::max(0, static_cast<int>(std::floor(std::min({a[1], b[1], c[1]}))));
        const int y1 = std::min(size - 1, static_cast<int>(std::ceil(std::max({a[1], b[1], c[1]}))));
        for (int y = y0; y <= y1; ++y)
            for (int x = x0; x <= x1; ++x) {
                const float px = x + 0.5f, py = y + 0.5f;
                // Barycentric weights of a, b, c at the pixel centre.
                const float wa = ((b[0] - px) * (c[1] - py) - (b[1] - py) * (c[0] - px)) / area;
                const float wb = ((c[0] - px) * (a[1] - py) - (c[1] - py) * (a[0] - px)) / area;
                const float wc = 1.0f - wa - wb;
                if (wa < 0 || wb < 0 || wc < 0) continue;
                const float z = wa * a[2] + wb * b[2] + wc * c[2];
                float& zbuf = depth[static_cast<std::size_t>(y) * size + x];
                if (z <= zbuf) continue;
                zbuf = z;
                std::uint8_t* pixel = image.pixel(x, y);
                for (int k = 0; k < 3; ++k) {
                    const float colour = wa * m.colours[t[0]][k] + wb * m.colours[t[1]][k] + wc * m.colours[t[2]][k];
                    pixel[k] = static_cast<std::uint8_t>(to_byte(std::clamp(colour * shade, 0.0f, 1.0f)));
                }
            }
    }
    return image;
}

int run(const Args& args) {
    facet::MeshDecoder decoder(args.model, facet::MeshDecoderOptions{args.threads});
    const facet::MeshDecoderModel& model = decoder.model();
    const std::vector<float> latent =
        args.latent.empty() ? random_latent(args.seed, model.latent_size()) : read_latent(args.latent, model.latent_size());
    const std::vector<float> decoded = decoder.decode(latent);
    // A latent far outside the training distribution (e.g. +-3.4e38) overflows the network: say
    // so rather than write "nan" vertices that no mesh reader takes.
    if (!std::all_of(decoded.begin(), decoded.end(), [](float x) { return std::isfinite(x); }))
        throw facet::Error((args.latent.empty() ? std::string("the latent code") : args.latent) +
                           ": the decoder's output is not finite for this latent code (values far outside N(0, 1)?)");
    const ColouredMesh mesh = to_mesh(model, decoded, args.offsets);
    write_ply(args.out + ".ply", mesh);
    write_obj(args.out + ".obj", mesh);
    if (!args.png.empty()) facet::write_png(args.png, render(mesh, args.size));
    std::cout << "facet-mesh: " << mesh.positions.size() << " vertices, " << mesh.faces.size() << " faces -> " << args.out
              << ".ply, " << args.out << ".obj" << (args.png.empty() ? "" : ", " + args.png) << "\n";
    return 0;
}

} // namespace

int main(int argc, char** argv) { return facet::cli::tool_main("facet-mesh", argc, argv, parse_args, run); }
