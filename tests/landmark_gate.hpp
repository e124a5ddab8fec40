// Issue 19's gate for landmark graphs in reduced precision (bf16, int8) against their fp32 files:
// on the faces RetinaFace (fp32) finds in every shared image, the worst NME (mean point distance
// over the box's longer side) per image must stay <= 1%. tests/test_landmarks_bf16.cpp and
// test_landmarks_int8.cpp run it; this holds what they share.
#pragma once
#include <doctest/doctest.h>
#include <facet/facet.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "detection_gate.hpp"
#include "test_util.hpp"

namespace facet::test {

constexpr double kMaxLandmarkNme = 0.01;

// Mean distance between corresponding points, over the box's longer side (the side of the square
// the landmark crop is cut around).
inline double normalised_mean_error(const LandmarkPoints& reference, const LandmarkPoints& points, const std::array<float, 4>& box) {
    REQUIRE(reference.size() == points.size());
    double sum = 0;
    for (std::size_t i = 0; i < points.size(); ++i)
        sum += std::hypot(static_cast<double>(points[i][0]) - reference[i][0], static_cast<double>(points[i][1]) - reference[i][1]);
    return sum / static_cast<double>(points.size()) / std::max(box[2] - box[0], box[3] - box[1]);
}

// The shared images (kGateImages) and the faces the fp32 RetinaFace finds in each.
struct LandmarkGateFaces {
    std::vector<Image> images;
    std::vector<std::vector<Face>> faces;
};

inline LandmarkGateFaces landmark_gate_faces() {
    RetinaFace detector(load_retinaface_model("retinaface_mnet025_official.facet"));
    LandmarkGateFaces g;
    for (const char* name : kGateImages) {
        g.images.push_back(load_image(shared_path(std::string("upstream/images/") + name)));
        g.faces.push_back(detector.detect(g.images.back()));
        REQUIRE(!g.faces.back().empty());
    }
    return g;
}

// Per image of `g`, the worst NME of `reduced`'s landmarks against `fp32`'s over its faces, both
// run on `kernels`.
inline std::vector<double> worst_landmark_nme(const std::shared_ptr<const GraphModel>& fp32, const std::shared_ptr<const GraphModel>& reduced,
                                              const KernelSet& kernels, const LandmarkGateFaces& g) {
    FaceLandmarker reference(fp32, kernels), landmarker(reduced, kernels);
    std::vector<double> worst(g.images.size(), 0.0);
    for (std::size_t i = 0; i < g.images.size(); ++i)
        for (const Face& face : g.faces[i])
            worst[i] = std::max(worst[i], normalised_mean_error(reference.landmarks(g.images[i], face.box),
                                                                landmarker.landmarks(g.images[i], face.box), face.box));
    return worst;
}

} // namespace facet::test
