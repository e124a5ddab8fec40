// facet: detections as JSON, in the schema of the golden files:
// {"image", "width", "height", "faces": [{"box": [x1, y1, x2, y2], "score", "landmarks": [[x, y] x 5]}]}
// and, when a landmark model ran, each face's dense landmarks as "landmarks98" or "landmarks68"
// and its "head_pose": {"yaw", "pitch", "roll"} in degrees (post/head_pose.hpp).
#pragma once
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

} // namespace detail

// `newline` separates the faces ("\n" for a readable file, "" for one JSON object per line);
// `dense` and `poses`, when not empty, hold each face's dense landmarks and head pose.
inline std::string faces_to_json(const std::string& image, int width, int height, const std::vector<Face>& faces,
                                 const std::string& newline = "\n", const std::vector<LandmarkPoints>& dense = {},
                                 const std::vector<HeadPose>& poses = {}) {
    std::string out = "{\"image\": ";
    json::write_string(out, image);
    out += ", \"width\": " + std::to_string(width) + ", \"height\": " + std::to_string(height) + ", \"faces\": [";
    for (std::size_t i = 0; i < faces.size(); ++i) {
        const Face& f = faces[i];
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
