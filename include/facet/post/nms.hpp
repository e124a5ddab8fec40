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

// Greedy NMS on candidates already sorted best first, in place: keeps each one that overlaps no
// kept one by more than `threshold`, in order, up to `max_keep`. The kept ones form a growing
// prefix of the vector, so this needs no memory of its own and compares each candidate with the
// kept faces only. Any type with Face's `box` and `score` members works (a cascade's candidates
// carry their box regression through NMS).
template <class Scored>
void nms_sorted_in_place(std::vector<Scored>& sorted, float threshold, NmsRule rule, std::size_t max_keep) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < sorted.size() && kept < max_keep; ++i) {
        bool suppressed = false;
        for (std::size_t j = 0; j < kept && !suppressed; ++j) suppressed = box_overlap(sorted[j].box, sorted[i].box, rule) > threshold;
        if (!suppressed) sorted[kept++] = sorted[i];
    }
    sorted.resize(kept);
}

// Sorts `faces` by descending score, then NMS as above. Ties keep their input order (stable), as
// upstream's argsort of an already sorted array does.
template <class Scored>
std::vector<Scored> nms(std::vector<Scored> faces, float threshold, NmsRule rule, std::size_t max_keep) {
    std::stable_sort(faces.begin(), faces.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
    nms_sorted_in_place(faces, threshold, rule, max_keep);
    return faces;
}

} // namespace facet
