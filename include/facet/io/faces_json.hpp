// facet: detections as JSON, in the schema of the golden files:
// {"image", "width", "height", "faces": [{"box": [x1, y1, x2, y2], "score", "landmarks": [[x, y] x 5]}]}
// (with "precision": "fp32" or "int8" after "height" when the caller names the detector's weights)
// and, when a landmark model ran, each face's dense landmarks as "landmarks98" or "landmarks68"
// and its "head_pose": {"yaw", "pitch", "roll"} in degrees (post/head_pose.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../post/face.hpp"
#include "../post/head_pose.hpp"
#include "json.hpp"

namespace facet {

namespace detail {

// Points as [[x, y], ...], 3 decimals (a thousandth of a pixel).
template <class Points>
inline void write_points(std::string& out, const Points& points) {
    out += "[";
    for (std::size_t n = 0; n < points.size(); ++n) {
        out += n ? ", [" : "[";
        json::write_number(out, points[n][0], 3);
        out += ", ";
        json::write_number(out, points[n][1], 3);
        out += "]";
    }
    out += "]";
}

// Whether every number of a face (and its dense landmarks and head pose, when given) is finite.
inline bool face_is_finite(const Face& f, const LandmarkPoints* dense, const HeadPose* pose) {
    const auto finite = [](float v) { return std::isfinite(v); };
    bool ok = std::all_of(f.box.begin(), f.box.end(), finite) && finite(f.score);
    for (const auto& p : f.landmarks) ok = ok && finite(p[0]) && finite(p[1]);
    if (dense)
        for (const auto& p : *dense) ok = ok && finite(p[0]) && finite(p[1]);
    if (pose) ok = ok && std::isfinite(pose->yaw) && std::isfinite(pose->pitch) && std::isfinite(pose->roll);
    return ok;
}

} // namespace detail

// `newline` separates the faces ("\n" for a readable file, "" for one JSON object per line);
// `dense` and `poses`, when not empty, hold each face's dense landmarks and head pose.
inline std::string faces_to_json(const std::string& image, int width, int height, const std::vector<Face>& faces,
                                 const std::string& newline = "\n", const std::vector<LandmarkPoints>& dense = {},
                                 const std::vector<HeadPose>& poses = {}, const std::string& precision = "") {
    std::string out = "{\"image\": ";
    json::write_string(out, image);
    out += ", \"width\": " + std::to_string(width) + ", \"height\": " + std::to_string(height);
    if (!precision.empty()) {
        out += ", \"precision\": ";
        json::write_string(out, precision);
    }
    out += ", \"faces\": [";
    for (std::size_t i = 0; i < faces.size(); ++i) {
        const Face& f = faces[i];
        // JSON has no infinity or NaN. A network gives them only from weights it should not have
        // (a CRC-valid file with huge biases overflows the box decoding): refused, by image.
        if (!detail::face_is_finite(f, i < dense.size() ? &dense[i] : nullptr, i < poses.size() ? &poses[i] : nullptr))
            throw Error(image + ": the model gave face " + std::to_string(i) +
                        " numbers that are not finite (box, score or landmarks): is the weight file corrupt?");
        out += (i ? "," : "") + newline + (newline.empty() ? "" : "  ") + "{\"box\": [";
        for (int k = 0; k < 4; ++k) {
            if (k) out += ", ";
            json::write_number(out, f.box[k], 3);
        }
        out += "], \"score\": ";
        json::write_number(out, f.score, 5);
        out += ", \"landmarks\": ";
        detail::write_points(out, f.landmarks);
        if (i < dense.size()) {
            out += ", \"landmarks" + std::to_string(dense[i].size()) + "\": ";
            detail::write_points(out, dense[i]);
        }
        if (i < poses.size()) {
            out += ", \"head_pose\": {\"yaw\": ";
            json::write_number(out, poses[i].yaw, 2);
            out += ", \"pitch\": ";
            json::write_number(out, poses[i].pitch, 2);
            out += ", \"roll\": ";
            json::write_number(out, poses[i].roll, 2);
            out += "}";
        }
        out += "}";
    }
    out += faces.empty() ? "]}" : newline + "]}";
    return out;
}

} // namespace facet
