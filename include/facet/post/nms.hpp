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

// A box's area under `offset`'s pixel convention (NmsRule::pixel_offset).
inline float box_area(const std::array<float, 4>& b, float offset) { return (b[2] - b[0] + offset) * (b[3] - b[1] + offset); }

// The overlap of boxes a and b (corners and areas given) by NmsRule's measure, branch-free so that a
// loop of them vectorises (overlaps_any_kept): `ratio` divides whatever the boxes, and
// `overlapping` says whether it counts: disjoint boxes (or a zero denominator) overlap by 0.
struct Overlap {
    float ratio;
    bool overlapping;
};
template <bool kOverMinArea>
inline Overlap overlap_of(float ax1, float ay1, float ax2, float ay2, float area_a, const std::array<float, 4>& b,
                          float area_b, float offset) {
    const float iw = std::min(ax2, b[2]) - std::max(ax1, b[0]) + offset;
    const float ih = std::min(ay2, b[3]) - std::max(ay1, b[1]) + offset;
    const float inter = iw * ih;
    const float denom = kOverMinArea ? std::min(area_a, area_b) : area_a + area_b - inter;
    return {inter / denom, bool((iw > 0.0f) & (ih > 0.0f) & (denom > 0.0f))};
}

inline float box_overlap(const std::array<float, 4>& a, const std::array<float, 4>& b, NmsRule rule) {
    const float o = rule.pixel_offset, area_a = box_area(a, o), area_b = box_area(b, o);
    const Overlap r = rule.over_min_area ? overlap_of<true>(a[0], a[1], a[2], a[3], area_a, b, area_b, o)
                                         : overlap_of<false>(a[0], a[1], a[2], a[3], area_a, b, area_b, o);
    return r.overlapping ? r.ratio : 0.0f;
}

// Intersection over union in continuous coordinates (no "+1" pixel sizes): how detections are
// compared with each other and with references.
inline float box_iou(const std::array<float, 4>& a, const std::array<float, 4>& b) { return box_overlap(a, b, NmsRule{0.0f, false}); }

// The kept boxes of a greedy NMS as arrays (structure of arrays) of corners and areas, padded to
// whole blocks of kBlock with boxes that overlap nothing, so that a candidate is tested against a
// block of them by one fixed-count loop the compiler vectorises. MTCNN's P-Net keeps hundreds of
// boxes a level and most of its candidates overlap none of them: each is compared with them all.
struct KeptBoxes {
    static constexpr std::size_t kBlock = 16;
    // A padding lane's corners: an empty box far outside any image (x1 > x2), so its width against
    // any real box is about -2e18, never > 0. Finite, not infinities: the products stay finite
    // (4e36 < FLT_MAX), so a program built with -ffinite-math-only decides the same.
    static constexpr float kFar = 1e18f;
    std::vector<float> x1, y1, x2, y2, area;
    std::size_t count = 0;

    void clear() { count = 0; }

    void push(const std::array<float, 4>& b, float b_area) {
        if (count % kBlock == 0) {
            // A new block, its lanes set to padding. (The arrays keep their size across frames: the
            // block's lanes are set, not appended.)
            for (auto* v : {&x1, &y1, &x2, &y2, &area})
                if (v->size() < count + kBlock) v->resize(count + kBlock);
            std::fill_n(x1.begin() + count, kBlock, kFar);
            std::fill_n(y1.begin() + count, kBlock, kFar);
            std::fill_n(x2.begin() + count, kBlock, -kFar);
            std::fill_n(y2.begin() + count, kBlock, -kFar);
            std::fill_n(area.begin() + count, kBlock, 0.0f);
        }
        x1[count] = b[0];
        y1[count] = b[1];
        x2[count] = b[2];
        y2[count] = b[3];
        area[count] = b_area;
        ++count;
    }
};

// Whether `b` (of area b_area) overlaps one of `kept` by more than `threshold`: box_overlap(kept,
// b, rule) > threshold lane by lane (the same overlap_of; the kept boxes' areas computed once).
template <bool kOverMinArea>
bool overlaps_any_kept(const KeptBoxes& kept, const std::array<float, 4>& b, float b_area, float threshold, float offset) {
    // box_overlap's 0 for boxes that do not overlap, against the threshold (a negative one
    // suppresses everything).
    const unsigned zero_exceeds = unsigned(0.0f > threshold);
    for (std::size_t block = 0; block < kept.count; block += KeptBoxes::kBlock) {
        const float* x1 = kept.x1.data() + block;
        const float* y1 = kept.y1.data() + block;
        const float* x2 = kept.x2.data() + block;
        const float* y2 = kept.y2.data() + block;
        const float* area = kept.area.data() + block;
        // Branch-free, so that it vectorises: the choice between the ratio's verdict and
        // zero_exceeds is a select.
        unsigned hit = 0;
        for (std::size_t l = 0; l < KeptBoxes::kBlock; ++l) {
            const Overlap r = overlap_of<kOverMinArea>(x1[l], y1[l], x2[l], y2[l], area[l], b, b_area, offset);
            const unsigned overlapping = r.overlapping;
            hit |= (overlapping & unsigned(r.ratio > threshold)) | (~overlapping & zero_exceeds);
        }
        if (hit & 1u) return true;
    }
    return false;
}

// Greedy NMS on candidates already sorted best first, in place: keeps each one that overlaps no
// kept one by more than `threshold`, in order, up to `max_keep`. The kept ones form a growing
// prefix of the vector and their boxes `boxes` (the caller's, reused: no allocation once warm);
// each candidate is compared with the kept faces only. Any type with Face's `box` and `score`
// members works (a cascade's candidates carry their box regression through NMS).
template <class Scored>
void nms_sorted_in_place(std::vector<Scored>& sorted, float threshold, NmsRule rule, std::size_t max_keep, KeptBoxes& boxes) {
    boxes.clear();
    const float o = rule.pixel_offset;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < sorted.size() && kept < max_keep; ++i) {
        const std::array<float, 4>& b = sorted[i].box;
        const float b_area = box_area(b, o);
        const bool suppressed = rule.over_min_area ? overlaps_any_kept<true>(boxes, b, b_area, threshold, o)
                                                   : overlaps_any_kept<false>(boxes, b, b_area, threshold, o);
        if (suppressed) continue;
        boxes.push(b, b_area);
        sorted[kept++] = sorted[i];
    }
    sorted.resize(kept);
}

// The same greedy rule written plainly, one box_overlap at a time: the reference nms_sorted_in_place's
// blocks are tested (tests/test_post.cpp) and benchmarked (bench/bench_mtcnn.cpp) against.
// `pairs_compared`, when given, counts the candidate-kept pairs compared, up to the first overlap that
// suppresses a candidate.
template <class Scored>
std::vector<Scored> nms_sorted_reference(const std::vector<Scored>& sorted, float threshold, NmsRule rule,
                                         double* pairs_compared = nullptr) {
    std::vector<Scored> kept;
    for (const Scored& candidate : sorted) {
        bool suppressed = false;
        for (std::size_t k = 0; k < kept.size() && !suppressed; ++k) {
            if (pairs_compared) ++*pairs_compared;
            suppressed = box_overlap(kept[k].box, candidate.box, rule) > threshold;
        }
        if (!suppressed) kept.push_back(candidate);
    }
    return kept;
}

// Memory for sort_descending_stable and nms, kept by a caller that sorts every frame so that, once
// warm, sorting allocates nothing (std::stable_sort takes a temporary buffer from the heap each
// call), nor does the NMS.
template <class T>
struct SortScratch {
    std::vector<std::uint32_t> order;
    std::vector<T> sorted;
    KeptBoxes kept;
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
    nms_sorted_in_place(items, threshold, rule, max_keep, scratch.kept);
}

// The same on a copy, with memory of its own.
template <class Scored>
std::vector<Scored> nms(std::vector<Scored> faces, float threshold, NmsRule rule, std::size_t max_keep) {
    SortScratch<Scored> scratch;
    nms(faces, threshold, rule, max_keep, scratch);
    return faces;
}

} // namespace facet
