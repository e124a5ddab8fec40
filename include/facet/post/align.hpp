// facet: 5-point face alignment: a least-squares similarity transform (Umeyama) from the detected
// landmarks to the standard 112 x 112 template, and the bilinear warp that applies it.
#pragma once
#include <array>
#include <cmath>

#include <Eigen/Dense>

#include "../io/image.hpp"
#include "face.hpp"

namespace facet {

// The ArcFace / InsightFace 112 x 112 template: eyes, nose, mouth corners.
inline const std::array<std::array<float, 2>, 5>& alignment_template_112() {
    static const std::array<std::array<float, 2>, 5> t{{{38.2946f, 51.6963f},
                                                        {73.5318f, 51.5014f},
                                                        {56.0252f, 71.7366f},
                                                        {41.5493f, 92.3655f},
                                                        {70.7299f, 92.2041f}}};
    return t;
}

// The similarity (rotation, uniform scale, translation) T minimising sum |T(src_i) - dst_i|^2,
// as a 2 x 3 matrix [sR | t] (Umeyama 1991, without reflection).
inline Eigen::Matrix<double, 2, 3> similarity_transform(const std::array<std::array<float, 2>, 5>& src,
                                                        const std::array<std::array<float, 2>, 5>& dst) {
    // Dynamic sizes: GCC 12 misreports an overread in Eigen's fixed-size 2x5 Umeyama path.
    Eigen::MatrixXd s(2, 5), d(2, 5);
    for (int i = 0; i < 5; ++i) {
        s.col(i) << src[i][0], src[i][1];
        d.col(i) << dst[i][0], dst[i][1];
    }
    const Eigen::MatrixXd m = Eigen::umeyama(s, d, true);
    return m.topRows(2);
}

// Samples `src` at T^-1 of every output pixel (bilinear, black outside): the aligned crop.
inline Image warp_similarity(const Image& src, const Eigen::Matrix<double, 2, 3>& t, int out_w, int out_h) {
    Eigen::Matrix3d full = Eigen::Matrix3d::Identity();
    full.topRows<2>() = t;
    const Eigen::Matrix3d inv = full.inverse();
    Image out(out_w, out_h);
    for (int y = 0; y < out_h; ++y)
        for (int x = 0; x < out_w; ++x) {
            const double sx = inv(0, 0) * x + inv(0, 1) * y + inv(0, 2);
            const double sy = inv(1, 0) * x + inv(1, 1) * y + inv(1, 2);
            const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
            const double fx = sx - x0, fy = sy - y0;
            double acc[3] = {0, 0, 0};
            for (int dy = 0; dy < 2; ++dy)
                for (int dx = 0; dx < 2; ++dx) {
                    const int px = x0 + dx, py = y0 + dy;
                    if (px < 0 || py < 0 || px >= src.width || py >= src.height) continue;
                    const double wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
                    for (int c = 0; c < 3; ++c) acc[c] += wgt * src.pixel(px, py)[c];
                }
            for (int c = 0; c < 3; ++c) out.pixel(x, y)[c] = static_cast<std::uint8_t>(std::lround(std::min(255.0, acc[c])));
        }
    return out;
}

// The 112 x 112 aligned crop of one face.
inline Image align_face(const Image& image, const Face& face) {
    return warp_similarity(image, similarity_transform(face.landmarks, alignment_template_112()), 112, 112);
}

} // namespace facet
