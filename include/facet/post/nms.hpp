// facet: greedy non-maximum suppression.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
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
    const float iw = std::min(a[2], b[2]) - std::max(a[0], b[0]) + o;
    const float ih = std::min(a[3], b[3]) - std::max(a[1], b[1]) + o;
    // Disjoint boxes overlap by exactly 0, decided without the areas and the division: most pairs
    // an NMS compares (MTCNN's P-Net keeps hundreds of boxes a level, spread over the image).
    if (!(iw > 0.0f) || !(ih > 0.0f)) return 0.0f;
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

// Memory for sort_descending_stable, kept by a caller that sorts every frame so that, once warm,
// sorting allocates nothing (std::stable_sort takes a temporary buffer from the heap each call).
template <class T>
struct SortScratch {
    std::vector<std::uint32_t> order;
    std::vector<T> sorted;
};

// Sorts `items` by descending key(item), ties kept in input order, as std::stable_sort would:
// std::sort on their indices, the index breaking ties, then a gather through `scratch`.
template <class T, class Key>
void sort_descending_stable(std::vector<T>& items, Key&& key, SortScratch<T>& scratch) {
    scratch.order.resize(items.size());
    std::iota(scratch.order.begin(), scratch.order.end(), std::uint32_t{0});
    std::sort(scratch.order.begin(), scratch.order.end(), [&](std::uint32_t a, std::uint32_t b) {
        const auto ka = key(items[a]), kb = key(items[b]);
        return ka > kb || (ka == kb && a < b);
    });
    scratch.sorted.clear();
    for (std::uint32_t i : scratch.order) scratch.sorted.push_back(items[i]);
    // Copied back, not swapped: each vector keeps its own capacity (one scratch serves many lists).
    std::copy(scratch.sorted.begin(), scratch.sorted.end(), items.begin());
}

// Sorts `items` by descending score (ties keep their input order, as upstream's argsort of an
// already sorted array does), then NMS as above, in place.
template <class Scored>
void nms(std::vector<Scored>& items, float threshold, NmsRule rule, std::size_t max_keep, SortScratch<Scored>& scratch) {
    sort_descending_stable(items, [](const Scored& s) { return s.score; }, scratch);
    nms_sorted_in_place(items, threshold, rule, max_keep);
}

// The same on a copy, with memory of its own.
template <class Scored>
std::vector<Scored> nms(std::vector<Scored> faces, float threshold, NmsRule rule, std::size_t max_keep) {
    SortScratch<Scored> scratch;
    nms(faces, threshold, rule, max_keep, scratch);
    return faces;
}

} // namespace facet
