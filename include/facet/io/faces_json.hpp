// facet: detections as JSON, in the schema of the golden files:
// {"image", "width", "height", "faces": [{"box": [x1, y1, x2, y2], "score", "landmarks": [[x, y] x 5]}]}
// ("precision": the detector's, after "height", when the caller names it)
// and, when a landmark model ran, each face's dense landmarks as "landmarks98" or "landmarks68"
// and its "head_pose": {"yaw", "pitch", "roll"} in degrees (post/head_pose.hpp); when a face
// recognition model ran, its "embedding": the 128-d descriptor (models/recognizer.hpp); when the
// attribute nets ran (models/attributes.hpp), "age", "gender": {"label", "probability"} and
// "expression": {label: probability}.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "../post/face.hpp"
#include "../post/head_pose.hpp"
#include "json.hpp"

namespace facet {

// A face's attributes as the JSON shows them; a part whose net did not run is left out.
struct FaceAttributes {
    bool has_age_gender = false;
    float age = 0;
    std::string gender;
    float gender_probability = 0;
    std::vector<std::pair<std::string, float>> expression; // label, probability; empty: not run
};

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

// `, "age": .., "gender": {..}, "expression": {..}` for the parts of `a` that ran.
inline void write_attributes(std::string& out, const FaceAttributes& a) {
    if (a.has_age_gender) {
        out += ", \"age\": ";
        json::write_number(out, a.age, 2);
        out += ", \"gender\": {\"label\": ";
        json::write_string(out, a.gender);
        out += ", \"probability\": ";
        json::write_number(out, a.gender_probability, 5);
        out += "}";
    }
    if (a.expression.empty()) return;
    out += ", \"expression\": {";
    for (std::size_t k = 0; k < a.expression.size(); ++k) {
        if (k) out += ", ";
        json::write_string(out, a.expression[k].first);
        out += ": ";
        json::write_number(out, a.expression[k].second, 5);
    }
    out += "}";
}

inline bool attributes_are_finite(const FaceAttributes& a) {
    bool ok = std::isfinite(a.age) && std::isfinite(a.gender_probability);
    for (const auto& e : a.expression) ok = ok && std::isfinite(e.second);
    return ok;
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

// What a run adds to the detections: the detector's precision and, per face, the outputs of the
// models that ran after it (each vector empty when its model did not run, else one entry a face).
struct FaceDetails {
    std::string precision; // the detector's weights ("fp32", "bf16", "int8"); "" leaves the key out
    std::vector<LandmarkPoints> dense;
    std::vector<HeadPose> poses;
    std::vector<FaceDescriptor> embeddings;
    std::vector<FaceAttributes> attributes;
};

// `newline` separates the faces ("\n" for a readable file, "" for one JSON object per line).
inline std::string faces_to_json(const std::string& image, int width, int height, const std::vector<Face>& faces,
                                 const std::string& newline = "\n", const FaceDetails& details = {}) {
    const auto& [precision, dense, poses, embeddings, attributes] = details;
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
        if (i < attributes.size() && !detail::attributes_are_finite(attributes[i]))
            throw Error(image + ": the attribute models gave face " + std::to_string(i) +
                        " numbers that are not finite (age, gender or expression): is a weight file corrupt?");
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
        if (i < embeddings.size()) {
            if (!std::all_of(embeddings[i].begin(), embeddings[i].end(), [](float v) { return std::isfinite(v); }))
                throw Error(image + ": the recognition model gave face " + std::to_string(i) +
                            " a descriptor that is not finite: is the weight file corrupt?");
            out += ", \"embedding\": [";
            for (int k = 0; k < kDescriptorSize; ++k) {
                if (k) out += ", ";
                json::write_number(out, embeddings[i][k], 6);
            }
            out += "]";
        }
        if (i < attributes.size()) detail::write_attributes(out, attributes[i]);
        out += "}";
    }
    out += faces.empty() ? "]}" : newline + "]}";
    return out;
}

} // namespace facet
