// facet: head pose (yaw, pitch, roll) from dense landmarks: the rotation of a generic 3D face that,
// seen through a pinhole camera, best reproduces the landmarks (perspective-n-point), found by
// Levenberg-Marquardt on the reprojection error.
//
// The camera: focal length = the image width in pixels, principal point = the image centre, no
// distortion. Without calibration that is a guess (a ~53 degree horizontal field of view, a typical
// phone or webcam); the angles depend little on it, the distance to the face a lot, so only the
// angles are reported.
//
// Frames: the camera looks along +z with x to the image's right and y down. The face model uses
// the same axes for a face looking straight into the camera (rotation = identity), so
//   yaw   > 0: the face turns toward the image's right (the subject's left),
//   pitch > 0: the face tilts up,
//   roll  > 0: the face turns clockwise in the image,
// and rotation = Rz(roll) * Ry(-yaw) * Rx(-pitch) (angles applied roll last): yaw and pitch with
// their signs flipped because a nose turning right or up is a negative turn about y (down) and x.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "../core/error.hpp"
#include "face.hpp"

namespace facet {

struct HeadPose {
    float yaw = 0, pitch = 0, roll = 0; // degrees, see above
    float reprojection_error = 0;       // root mean square over the model's points, in pixels
    Eigen::Matrix3d rotation = Eigen::Matrix3d::Identity(); // model -> camera
    Eigen::Vector3d translation = Eigen::Vector3d::Zero();  // the model's origin (the nose tip) in the camera frame, mm
};

// One point of the generic face: its index among the 68 iBUG landmarks and its position in mm.
struct FaceModelPoint {
    int index68;
    double x, y, z;
};

// The generic face: the points of the 68 that sit on bone or cartilage and barely move with
// expression (brow ends, eye corners, nose, mouth corners, chin); the jaw line is left out because
// its 2D points slide along the silhouette as the head turns. Origin at the nose tip, axes as the
// camera's for a frontal face (x to the image's right, y down, z away from the camera), in mm.
// Rounded adult averages after Farkas' anthropometry (eye corners 90 mm and 32 mm apart, 38 mm
// above the nose tip; mouth 54 mm wide; chin 76 mm below the nose tip), the brows and mouth then
// moved to where 98-point landmarks put them on the three frontal test portraits (point to point
// relative to the outer eye corners' distance). Left-right symmetric, so a frontal face gives yaw
// and roll near 0 whatever the person's proportions.
inline const std::array<FaceModelPoint, 15>& generic_face_model() {
    static const std::array<FaceModelPoint, 15> model{{
        {17, -54, -50, 33}, {21, -12, -58, 15}, {22, 12, -58, 15}, {26, 54, -50, 33}, // brow ends
        {36, -45, -38, 32}, {39, -16, -38, 24}, {42, 16, -38, 24}, {45, 45, -38, 32}, // eye corners
        {30, 0, 0, 0},      {31, -15, 7, 18},   {33, 0, 10, 14},   {35, 15, 7, 18},   // nose tip, base
        {48, -27, 30, 24},  {54, 27, 30, 24},                                          // mouth corners
        {8, 0, 76, 22},                                                                 // chin
    }};
    return model;
}

// The index among 98 WFLW landmarks of each of the 68 iBUG ones the model uses: the same
// anatomical point in WFLW's denser layout.
inline int wflw_index(int index68) {
    switch (index68) {
    case 8: return 16;
    case 17: return 33;
    case 21: return 37;
    case 22: return 42;
    case 26: return 46;
    case 30: return 54;
    case 31: return 55;
    case 33: return 57;
    case 35: return 59;
    case 36: return 60;
    case 39: return 64;
    case 42: return 68;
    case 45: return 72;
    case 48: return 76;
    case 54: return 82;
    default: throw Error("no WFLW landmark for iBUG point " + std::to_string(index68));
    }
}

namespace detail {

struct PinholeCamera {
    double focal, cx, cy;
};

// Residuals (projection - observation, 2 per point) of the model under (rotation, translation),
// and their Jacobian with respect to a small rotation w (rotation <- exp([w]x) rotation) and to
// the translation. False when a point falls behind the camera.
inline bool reprojection(const PinholeCamera& cam, const std::vector<Eigen::Vector3d>& model,
                         const std::vector<Eigen::Vector2d>& observed, const Eigen::Matrix3d& rotation,
                         const Eigen::Vector3d& translation, Eigen::VectorXd& residuals, Eigen::MatrixXd* jacobian) {
    const Eigen::Index n = static_cast<Eigen::Index>(model.size());
    residuals.resize(2 * n);
    if (jacobian) jacobian->resize(2 * n, 6);
    for (Eigen::Index i = 0; i < n; ++i) {
        const Eigen::Vector3d rotated = rotation * model[i];
        const Eigen::Vector3d p = rotated + translation;
        if (p.z() <= 1e-6) return false;
        const double inv_z = 1.0 / p.z();
        residuals(2 * i) = cam.focal * p.x() * inv_z + cam.cx - observed[i].x();
        residuals(2 * i + 1) = cam.focal * p.y() * inv_z + cam.cy - observed[i].y();
        if (!jacobian) continue;
        Eigen::Matrix<double, 2, 3> d_projection; // d(u, v) / d(p)
        d_projection << cam.focal * inv_z, 0, -cam.focal * p.x() * inv_z * inv_z,
                        0, cam.focal * inv_z, -cam.focal * p.y() * inv_z * inv_z;
        Eigen::Matrix3d d_rotation; // d(p) / d(w) = -[rotated]x
        d_rotation << 0, rotated.z(), -rotated.y(),
                      -rotated.z(), 0, rotated.x(),
                      rotated.y(), -rotated.x(), 0;
        jacobian->block<2, 3>(2 * i, 0) = d_projection * d_rotation;
        jacobian->block<2, 3>(2 * i, 3) = d_projection;
    }
    return true;
}

} // namespace detail

// The head pose of a face from its 68 iBUG or 98 WFLW landmarks in the pixels of an image of
// width x height.
inline HeadPose estimate_head_pose(const LandmarkPoints& landmarks, int width, int height) {
    if (landmarks.size() != 68 && landmarks.size() != 98)
        throw Error("head pose needs 68 or 98 landmarks, not " + std::to_string(landmarks.size()));
    if (width < 1 || height < 1) throw Error("head pose needs the image size");
    const detail::PinholeCamera cam{static_cast<double>(width), width / 2.0, height / 2.0};

    std::vector<Eigen::Vector3d> model;
    std::vector<Eigen::Vector2d> observed;
    for (const FaceModelPoint& m : generic_face_model()) {
        const auto& p = landmarks[landmarks.size() == 68 ? m.index68 : wflw_index(m.index68)];
        if (!std::isfinite(p[0]) || !std::isfinite(p[1])) throw Error("head pose: a landmark is not a finite number");
        model.emplace_back(m.x, m.y, m.z);
        observed.emplace_back(p[0], p[1]);
    }

    // Start from a frontal face at the distance where the model's spread matches the points'.
    Eigen::Vector3d model_mean = Eigen::Vector3d::Zero();
    Eigen::Vector2d observed_mean = Eigen::Vector2d::Zero();
    for (std::size_t i = 0; i < model.size(); ++i) {
        model_mean += model[i] / static_cast<double>(model.size());
        observed_mean += observed[i] / static_cast<double>(model.size());
    }
    double model_spread = 0, observed_spread = 0;
    for (std::size_t i = 0; i < model.size(); ++i) {
        model_spread += (model[i] - model_mean).head<2>().squaredNorm();
        observed_spread += (observed[i] - observed_mean).squaredNorm();
    }
    if (!(observed_spread >= static_cast<double>(model.size()))) // under a pixel from their mean, on average
        throw Error("head pose: the landmarks span less than a pixel");
    const double depth = cam.focal * std::sqrt(model_spread / observed_spread);
    Eigen::Matrix3d rotation = Eigen::Matrix3d::Identity();
    Eigen::Vector3d translation((observed_mean.x() - cam.cx) * depth / cam.focal - model_mean.x(),
                                (observed_mean.y() - cam.cy) * depth / cam.focal - model_mean.y(), depth - model_mean.z());

    // Levenberg-Marquardt, damping scaled by the diagonal (Marquardt's form).
    Eigen::VectorXd residuals, trial;
    Eigen::MatrixXd jacobian;
    detail::reprojection(cam, model, observed, rotation, translation, residuals, &jacobian);
    double cost = residuals.squaredNorm(), damping = 1e-3;
    for (int iteration = 0; iteration < 100; ++iteration) {
        const Eigen::Matrix<double, 6, 6> normal = jacobian.transpose() * jacobian;
        const Eigen::Matrix<double, 6, 1> gradient = jacobian.transpose() * residuals;
        Eigen::Matrix<double, 6, 6> damped = normal;
        damped.diagonal() += damping * normal.diagonal().cwiseMax(1e-9);
        const Eigen::Matrix<double, 6, 1> step = damped.ldlt().solve(-gradient);
        const Eigen::Vector3d w = step.head<3>();
        const Eigen::Matrix3d trial_rotation =
            w.norm() > 0 ? Eigen::Matrix3d(Eigen::AngleAxisd(w.norm(), w.normalized()) * rotation) : rotation;
        const Eigen::Vector3d trial_translation = translation + step.tail<3>();
        if (detail::reprojection(cam, model, observed, trial_rotation, trial_translation, trial, nullptr) &&
            trial.squaredNorm() < cost) {
            const double gain = cost - trial.squaredNorm();
            rotation = trial_rotation;
            translation = trial_translation;
            detail::reprojection(cam, model, observed, rotation, translation, residuals, &jacobian);
            cost = residuals.squaredNorm();
            damping = std::max(damping / 10, 1e-12);
            if (gain <= 1e-12 * (cost + 1e-12) && w.norm() < 1e-10) break;
        } else {
            damping *= 10;
            if (damping > 1e12) break; // no step lowers the error: at the minimum
        }
    }

    // rotation = Rz(roll) Ry(-yaw) Rx(-pitch): R(2,0) = sin(yaw), R(2,1) = -cos(yaw) sin(pitch),
    // R(2,2) = cos(yaw) cos(pitch), R(1,0) = sin(roll) cos(yaw), R(0,0) = cos(roll) cos(yaw).
    constexpr double kDegrees = 180.0 / 3.14159265358979323846;
    HeadPose pose;
    pose.rotation = rotation;
    pose.translation = translation;
    pose.yaw = static_cast<float>(std::asin(std::clamp(rotation(2, 0), -1.0, 1.0)) * kDegrees);
    pose.pitch = static_cast<float>(std::atan2(-rotation(2, 1), rotation(2, 2)) * kDegrees);
    pose.roll = static_cast<float>(std::atan2(rotation(1, 0), rotation(0, 0)) * kDegrees);
    pose.reprojection_error = static_cast<float>(std::sqrt(cost / static_cast<double>(model.size())));
    return pose;
}

} // namespace facet
