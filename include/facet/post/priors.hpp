// facet: RetinaFace anchors (priors) and the decoding of box and landmark deltas against them.
#pragma once
#include <array>
#include <cmath>
#include <vector>

namespace facet {

struct Prior {
    float cx, cy, w, h; // relative to the input size, in [0, 1] for centres
};

// Level k has stride steps[k], a grid of ceil(H / s) x ceil(W / s) cells, and one prior per cell
// and size in min_sizes[k]; order is level, row, column, size (the heads' output order).
inline std::vector<Prior> make_priors(int height, int width, const std::vector<int>& steps,
                                      const std::vector<std::vector<float>>& min_sizes) {
    std::vector<Prior> priors;
    for (std::size_t k = 0; k < steps.size(); ++k) {
        const int s = steps[k];
        const int rows = (height + s - 1) / s, cols = (width + s - 1) / s;
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j)
                for (float m : min_sizes[k])
                    priors.push_back({(j + 0.5f) * s / width, (i + 0.5f) * s / height, m / width, m / height});
    }
    return priors;
}

// Box (x1, y1, x2, y2) in relative units from deltas d[4], variances (centre, size).
inline std::array<float, 4> decode_box(const Prior& p, const float* d, float var_centre, float var_size) {
    const float cx = p.cx + d[0] * var_centre * p.w, cy = p.cy + d[1] * var_centre * p.h;
    const float w = p.w * std::exp(d[2] * var_size), h = p.h * std::exp(d[3] * var_size);
    return {cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
}

// Landmark n from deltas l[10].
inline std::array<float, 2> decode_landmark(const Prior& p, const float* l, int n, float var_centre) {
    return {p.cx + l[2 * n] * var_centre * p.w, p.cy + l[2 * n + 1] * var_centre * p.h};
}

} // namespace facet
