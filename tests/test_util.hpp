// Helpers shared by the tests: random fills, map comparison, paths to shared data.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <facet/core/tensor.hpp>
#include <facet/kernels/kernel_set.hpp>
#include <facet/io/json.hpp>
#include <facet/models/retinaface.hpp>

#include "../bench/bench_inputs.hpp"

namespace facet::test {

inline std::vector<float> random_floats(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return v;
}

// Fills the interior (real channels only) of a map with random values: the benchmarks' fill.
using bench::fill_random;

// max |a - b| / (1 + |b|) over the real channels.
inline double max_rel_error(const FeatureMap& a, const FeatureMap& b) {
    double worst = 0.0;
    for (int y = 0; y < b.h; ++y)
        for (int x = 0; x < b.w; ++x)
            for (int c = 0; c < b.c; ++c) {
                const double e = std::fabs(a.at(y, x)[c] - b.at(y, x)[c]) / (1.0 + std::fabs(b.at(y, x)[c]));
                if (!(e <= worst)) worst = e; // NaN counts as the worst
            }
    return worst;
}

// max |a - b| / (1 + max |b|) over the real channels: error relative to the output's scale, for
// kernels (Winograd) whose rounding grows with the magnitudes summed, not with each output.
inline double max_scaled_error(const FeatureMap& a, const FeatureMap& b) {
    double worst = 0.0, scale = 0.0;
    for (int y = 0; y < b.h; ++y)
        for (int x = 0; x < b.w; ++x)
            for (int c = 0; c < b.c; ++c) {
                const double e = std::fabs(a.at(y, x)[c] - b.at(y, x)[c]);
                if (!(e <= worst)) worst = e;
                scale = std::max(scale, static_cast<double>(std::fabs(b.at(y, x)[c])));
            }
    return worst / (1.0 + scale);
}

// True when every lane past the real channels and every ring pixel is exactly zero.
// The largest |a[i] - b[i]| of two equally long vectors.
inline double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    return worst;
}

inline bool padding_is_zero(const FeatureMap& m) {
    for (int y = -1; y <= m.h; ++y)
        for (int x = -1; x <= m.w; ++x) {
            const bool ring = y < 0 || x < 0 || y == m.h || x == m.w;
            for (int c = ring ? 0 : m.c; c < m.cstride; ++c)
                if (m.at(y, x)[c] != 0.0f) return false;
        }
    return true;
}

// Every instruction set this CPU runs: the tests check each compiled path, not just the best.
inline std::vector<const KernelSet*> all_kernel_sets() {
    std::vector<const KernelSet*> sets;
    for (Isa isa : supported_isas()) sets.push_back(&kernel_set(isa));
    return sets;
}

inline std::string source_path(const std::string& rel) { return std::string(FACET_SOURCE_DIR) + "/" + rel; }

// ../shared next to the checkout (FACET_SHARED overrides); empty when absent.
inline std::string shared_path(const std::string& rel) {
    const char* env = std::getenv("FACET_SHARED");
    return (env && *env ? std::string(env) : source_path("../shared")) + "/" + rel;
}

inline std::string weights_path(const std::string& name) {
    const char* env = std::getenv("FACET_WEIGHTS_DIR");
    return (env && *env ? std::string(env) : source_path("weights")) + "/" + name;
}

// The path of a weight file of weights/ (FACET_WEIGHTS_DIR overrides); the test fails, naming the
// file, when setup.sh has not made it.
inline std::string required_weights_path(const std::string& file) {
    const std::string path = weights_path(file);
    INFO("weight file " << path << " (made by ./setup.sh)");
    REQUIRE(std::ifstream(path).good());
    return path;
}

inline std::shared_ptr<const RetinaFaceModel> load_retinaface_model(const std::string& file) {
    return RetinaFaceModel::from_file(required_weights_path(file));
}

// The faces of a golden file (../shared/golden/*.json: box, score, five landmarks each).
inline std::vector<Face> load_golden_faces(const std::string& path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), path);
    std::stringstream text;
    text << f.rdbuf();
    const json::Value doc = json::parse(text.str());
    std::vector<Face> faces;
    for (const auto& face : doc["faces"].array()) {
        Face g;
        for (int k = 0; k < 4; ++k) g.box[k] = static_cast<float>(face["box"][k].number());
        g.score = static_cast<float>(face["score"].number());
        for (int n = 0; n < 5; ++n)
            for (int k = 0; k < 2; ++k) g.landmarks[n][k] = static_cast<float>(face["landmarks"][n][k].number());
        faces.push_back(g);
    }
    return faces;
}

} // namespace facet::test
