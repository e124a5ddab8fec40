// facet: drawing detections onto an image (boxes and landmark dots) for annotated output.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../post/face.hpp"
#include "image.hpp"

namespace facet {

using Rgb = std::array<std::uint8_t, 3>;

inline void fill_rect(Image& img, int x1, int y1, int x2, int y2, Rgb color) {
    x1 = std::max(x1, 0);
    y1 = std::max(y1, 0);
    x2 = std::min(x2, img.width - 1);
    y2 = std::min(y2, img.height - 1);
    for (int y = y1; y <= y2; ++y)
        for (int x = x1; x <= x2; ++x) std::copy(color.begin(), color.end(), img.pixel(x, y));
}

// An axis-aligned rectangle outline `thickness` pixels wide, clipped to the image.
inline void draw_box(Image& img, const std::array<float, 4>& box, Rgb color, int thickness) {
    const int x1 = static_cast<int>(std::lround(box[0])), y1 = static_cast<int>(std::lround(box[1]));
    const int x2 = static_cast<int>(std::lround(box[2])), y2 = static_cast<int>(std::lround(box[3]));
    const int t = thickness - 1;
    fill_rect(img, x1, y1, x2, y1 + t, color);
    fill_rect(img, x1, y2 - t, x2, y2, color);
    fill_rect(img, x1, y1, x1 + t, y2, color);
    fill_rect(img, x2 - t, y1, x2, y2, color);
}

inline void draw_dot(Image& img, float cx, float cy, float radius, Rgb color) {
    const int x0 = static_cast<int>(std::floor(cx - radius)), x1 = static_cast<int>(std::ceil(cx + radius));
    const int y0 = static_cast<int>(std::floor(cy - radius)), y1 = static_cast<int>(std::ceil(cy + radius));
    for (int y = std::max(y0, 0); y <= std::min(y1, img.height - 1); ++y)
        for (int x = std::max(x0, 0); x <= std::min(x1, img.width - 1); ++x)
            if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= radius * radius)
                std::copy(color.begin(), color.end(), img.pixel(x, y));
}

// Boxes in green, landmarks as dots: eyes blue (left) and cyan (right), nose magenta, mouth
// corners red (left) and yellow (right). Line width and dot size follow the face size, so small
// faces in a crowd stay readable.
inline void annotate(Image& img, const std::vector<Face>& faces) {
    static const Rgb landmark_colors[5] = {{0, 96, 255}, {0, 220, 255}, {255, 0, 255}, {255, 40, 40}, {255, 230, 0}};
    for (const Face& f : faces) {
        const float side = std::min(f.box[2] - f.box[0], f.box[3] - f.box[1]);
        draw_box(img, f.box, {0, 255, 0}, side > 60 ? 3 : side > 20 ? 2 : 1);
        const float radius = std::clamp(side / 30.0f, 1.0f, 6.0f);
        for (int n = 0; n < 5; ++n) draw_dot(img, f.landmarks[n][0], f.landmarks[n][1], radius, landmark_colors[n]);
    }
}

// Dense landmarks (models/landmarks.hpp) as small dots: white ringed in black, so they show on any
// skin or background; sized, as the rest, by the face.
inline void annotate_landmarks(Image& img, const std::vector<Face>& faces, const std::vector<LandmarkPoints>& dense) {
    for (std::size_t i = 0; i < faces.size() && i < dense.size(); ++i) {
        const Face& f = faces[i];
        const float radius = std::clamp(std::min(f.box[2] - f.box[0], f.box[3] - f.box[1]) / 80.0f, 1.0f, 4.0f);
        for (const auto& p : dense[i]) draw_dot(img, p[0], p[1], radius + 1.0f, {0, 0, 0});
        for (const auto& p : dense[i]) draw_dot(img, p[0], p[1], radius, {255, 255, 255});
    }
}

} // namespace facet
