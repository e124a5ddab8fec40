// facet: greedy non-maximum suppression.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
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

// The kept boxes of a greedy NMS as arrays (structure of arrays) of corners and areas, padded to
// whole blocks of kBlock with boxes that overlap nothing, so that a candidate is tested against a
// block of them by one fixed-count loop the compiler vectorises. MTCNN's P-Net keeps hundreds of
// boxes a level and most of its candidates overlap none of them: each is compared with them all.
struct KeptBoxes {
    static constexpr std::size_t kBlock = 16;
    std::vector<float> x1, y1, x2, y2, area;
    std::size_t count = 0;

    void clear() { count = 0; }

    void push(const std::array<float, 4>& b, float box_area) {
        if (count % kBlock == 0) {
            // A new block, its lanes set to empty boxes: min(x2) - max(x1) is -inf, never > 0.
            // (The arrays keep their size across frames: the block's lanes are set, not appended.)
            const float inf = std::numeric_limits<float>::infinity();
            for (auto* v : {&x1, &y1, &x2, &y2, &area})
                if (v->size() < count + kBlock) v->resize(count + kBlock);
            std::fill_n(x1.begin() + count, kBlock, inf);
            std::fill_n(y1.begin() + count, kBlock, inf);
            std::fill_n(x2.begin() + count, kBlock, -inf);
            std::fill_n(y2.begin() + count, kBlock, -inf);
            std::fill_n(area.begin() + count, kBlock, 0.0f);
        }
        x1[count] = b[0];
        y1[count] = b[1];
        x2[count] = b[2];
        y2[count] = b[3];
        area[count] = box_area;
        ++count;
    }
};

// Whether `b` (of area b_area) overlaps one of `kept` by more than `threshold`: box_overlap(kept,
// b, rule) > threshold lane by lane, the same float operations in the same order (the kept boxes'
// areas are box_overlap's area_a, computed once), so the same decisions.
template <bool kOverMinArea>
bool overlaps_any_kept(const KeptBoxes& kept, const std::array<float, 4>& b, float b_area, float threshold, float offset) {
    const unsigned zero_exceeds = unsigned(0.0f > threshold);
    for (std::size_t block = 0; block < kept.count; block += KeptBoxes::kBlock) {
        const float* x1 = kept.x1.data() + block;
        const float* y1 = kept.y1.data() + block;
        const float* x2 = kept.x2.data() + block;
        const float* y2 = kept.y2.data() + block;
        const float* area = kept.area.data() + block;
        // Branch-free, so that it vectorises: every lane divides, and box_overlap's zero for
        // disjoint boxes (or a zero denominator) becomes a select of `zero_exceeds`.
        unsigned hit = 0;
        for (std::size_t l = 0; l < KeptBoxes::kBlock; ++l) {
            const float iw = std::min(x2[l], b[2]) - std::max(x1[l], b[0]) + offset;
            const float ih = std::min(y2[l], b[3]) - std::max(y1[l], b[1]) + offset;
            const float inter = iw * ih;
            const float denom = kOverMinArea ? std::min(area[l], b_area) : area[l] + b_area - inter;
            const unsigned overlapping = unsigned(iw > 0.0f) & unsigned(ih > 0.0f) & unsigned(denom > 0.0f);
            const unsigned exceeds = unsigned(inter / denom > threshold);
            hit |= (overlapping & exceeds) | (~overlapping & zero_exceeds);
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
        const float b_area = (b[2] - b[0] + o) * (b[3] - b[1] + o);
        const bool suppressed = rule.over_min_area ? overlaps_any_kept<true>(boxes, b, b_area, threshold, o)
                                                   : overlaps_any_kept<false>(boxes, b, b_area, threshold, o);
        if (suppressed) continue;
        boxes.push(b, b_area);
        sorted[kept++] = sorted[i];
    }
    sorted.resize(kept);
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
