// facet: what a detector returns.
#pragma once
#include <array>
#include <vector>

namespace facet {

// One detected face, in input-image pixels. Landmarks: left eye, right eye, nose, left and right
// mouth corners, as seen in the image.
struct Face {
    std::array<float, 4> box{};  // x1, y1, x2, y2
    float score = 0.0f;
    std::array<std::array<float, 2>, 5> landmarks{};
};

// Dense landmarks of one face (98 WFLW or 68 points, models/landmarks.hpp), x and y in image pixels.
using LandmarkPoints = std::vector<std::array<float, 2>>;

// A face's 128-d descriptor from a face recognition network (models/recognizer.hpp).
constexpr int kDescriptorSize = 128;
using FaceDescriptor = std::array<float, kDescriptorSize>;

} // namespace facet
