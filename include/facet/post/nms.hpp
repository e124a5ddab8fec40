// facet: greedy non-maximum suppression.
#pragma once
#include <algorithm>
#include <vector>

#include "face.hpp"

namespace facet {

// How box sizes and overlap are measured; detectors differ and parity needs each one exact.
struct NmsRule {
    float pixel_offset = 1.0f;    // +1 for the inclusive-pixel convention of RetinaFace / O-Net, 0 for torchvision
    bool over_min_area = false;   // intersection over the smaller area instead of over the union
};

inline float box_overlap(const std::array<float, 4>& a, const std::array<float, 4>& b, NmsRule rule) {
    const float o = rule.pixel_offset;
    const float iw = std::max(0.0f, std::min(a[2], b[2]) - std::max(a[0], b[0]) + o);
    const float ih = std::max(0.0f, std::min(a[3], b[3]) - std::max(a[1], b[1]) + o);
    const float inter = iw * ih;
    const float area_a = (a[2] - a[0] + o) * (a[3] - a[1] + o), area_b = (b[2] - b[0] + o) * (b[3] - b[1] + o);
    const float denom = rule.over_min_area ? std::min(area_a, area_b) : area_a + area_b - inter;
    return denom > 0.0f ? inter / denom : 0.0f;
}

// Keeps faces in descending score order, dropping any whose overlap with an already kept face
// exceeds `threshold`; stops after `max_keep`. Ties keep their input order (stable), as upstream's
// argsort of an already sorted array does. Any type with Face's `box` and `score` members works
// (a cascade's candidates carry their box regression through NMS).
template <class Scored>
std::vector<Scored> nms(std::vector<Scored> faces, float threshold, NmsRule rule, std::size_t max_keep) {
    std::stable_sort(faces.begin(), faces.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
    std::vector<Scored> kept;
    std::vector<char> suppressed(faces.size(), 0);
    for (std::size_t i = 0; i < faces.size() && kept.size() < max_keep; ++i) {
        if (suppressed[i]) continue;
        kept.push_back(faces[i]);
        for (std::size_t j = i + 1; j < faces.size(); ++j)
            if (!suppressed[j] && box_overlap(faces[i].box, faces[j].box, rule) > threshold) suppressed[j] = 1;
    }
    return kept;
}

} // namespace facet
