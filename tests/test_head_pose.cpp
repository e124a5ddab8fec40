// Head pose (post/head_pose.hpp): the generic face projected at known angles comes back at those
// angles; the signs mean what the header says; real frontal portraits come out frontal.
#include <doctest/doctest.h>
#include <facet/io/image.hpp>
#include <facet/models/landmarks.hpp>
#include <facet/models/retinaface.hpp>
#include <facet/post/head_pose.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "test_util.hpp"

using namespace facet;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr int kWidth = 640, kHeight = 480;

struct Angles {
    double yaw, pitch, roll;
};

// The header's convention written out with Eigen's own rotations: Rz(roll) Ry(-yaw) Rx(-pitch).
Eigen::Matrix3d rotation_of(const Angles& a) {
    const double r = kPi / 180;
    return (Eigen::AngleAxisd(a.roll * r, Eigen::Vector3d::UnitZ()) * Eigen::AngleAxisd(-a.yaw * r, Eigen::Vector3d::UnitY()) *
            Eigen::AngleAxisd(-a.pitch * r, Eigen::Vector3d::UnitX()))
        .toRotationMatrix();
}

// The generic face at `angles`, its nose tip at `position` (mm, camera frame), seen by the camera
// estimate_head_pose assumes (focal = image width, centred); `points` 68 or 98 landmarks, the ones
// the model does not use left at (0, 0).
LandmarkPoints project_face(const Angles& angles, const Eigen::Vector3d& position, std::size_t points) {
    LandmarkPoints out(points, {0.0f, 0.0f});
    const Eigen::Matrix3d rotation = rotation_of(angles);
    for (const FaceModelPoint& m : generic_face_model()) {
        const Eigen::Vector3d p = rotation * Eigen::Vector3d(m.x, m.y, m.z) + position;
        const std::size_t index = points == 68 ? m.index68 : wflw_index(m.index68);
        out[index] = {static_cast<float>(kWidth * p.x() / p.z() + kWidth / 2.0), static_cast<float>(kWidth * p.y() / p.z() + kHeight / 2.0)};
    }
    return out;
}

} // namespace

TEST_CASE("head pose: the generic face projected at known angles is recovered within 1 degree, 68 and 98 points") {
    const std::vector<Angles> poses = {{0, 0, 0},    {30, 0, 0},   {-30, 0, 0},   {0, 20, 0},   {0, -20, 0},  {0, 0, 25},
                                       {0, 0, -25},  {45, 0, 0},   {-60, 0, 0},   {20, -15, 10}, {-35, 25, -20}, {10, 35, 5},
                                       {50, -30, 30}};
    const std::vector<Eigen::Vector3d> positions = {{0, 0, 600}, {-120, 80, 450}, {200, -60, 1500}};
    for (std::size_t points : {std::size_t{68}, std::size_t{98}})
        for (const Angles& a : poses)
            for (const Eigen::Vector3d& position : positions) {
                const HeadPose pose = estimate_head_pose(project_face(a, position, points), kWidth, kHeight);
                CAPTURE(points);
                CAPTURE(a.yaw);
                CAPTURE(a.pitch);
                CAPTURE(a.roll);
                CAPTURE(position.transpose());
                CHECK(std::fabs(pose.yaw - a.yaw) < 1.0);
                CHECK(std::fabs(pose.pitch - a.pitch) < 1.0);
                CHECK(std::fabs(pose.roll - a.roll) < 1.0);
                CHECK(pose.reprojection_error < 0.01f);
                CHECK((pose.translation - position).norm() < 1.0);
            }
}

TEST_CASE("head pose: the signs mean what they say in the image") {
    const Eigen::Vector3d ahead(0, 0, 600);
    const auto nose_minus_eyes = [&](const Angles& a) { // the nose tip relative to the outer eye corners' midpoint
        const LandmarkPoints p = project_face(a, ahead, 68);
        return std::array<float, 2>{p[30][0] - (p[36][0] + p[45][0]) / 2, p[30][1] - (p[36][1] + p[45][1]) / 2};
    };
    const float frontal_drop = nose_minus_eyes({0, 0, 0})[1];
    CHECK(nose_minus_eyes({20, 0, 0})[0] > 5);             // yaw > 0: the nose moves to the image's right
    CHECK(nose_minus_eyes({0, 20, 0})[1] < frontal_drop - 5); // pitch > 0: the nose rises toward the eyes
    const LandmarkPoints rolled = project_face({0, 0, 20}, ahead, 68);
    CHECK(rolled[45][1] > rolled[36][1] + 5); // roll > 0 (clockwise): the image-right eye drops
}

TEST_CASE("head pose: refuses what it cannot use") {
    CHECK_THROWS_WITH_AS(estimate_head_pose(LandmarkPoints(5), kWidth, kHeight), "head pose needs 68 or 98 landmarks, not 5", Error);
    CHECK_THROWS_WITH_AS(estimate_head_pose(LandmarkPoints(68, {3.0f, 4.0f}), kWidth, kHeight),
                         "head pose: the landmarks span less than a pixel", Error);
    LandmarkPoints bad = project_face({0, 0, 0}, {0, 0, 600}, 68);
    bad[30][0] = std::nanf("");
    CHECK_THROWS_WITH_AS(estimate_head_pose(bad, kWidth, kHeight), "head pose: a landmark is not a finite number", Error);
}

TEST_CASE("head pose: the frontal portraits look at the camera (RetinaFace, then face-api's 68 or PFLD-GhostOne's 98 points)") {
    RetinaFace detector(RetinaFaceModel::from_file(test::weights_path("retinaface_mnet025_official.facet")));
    for (const char* model : {"face_landmark_68.facet", "pfld_ghostone.facet"}) {
        FaceLandmarker landmarker(GraphModel::from_file(test::weights_path(model)));
        for (const char* name : {"portrait_kate_siegel.jpg", "portrait_angelina_jolie.jpg", "portrait_paul_rudd.jpg"}) {
            const Image image = load_image(test::shared_path(std::string("upstream/images/") + name));
            const std::vector<Face> faces = detector.detect(image);
            REQUIRE(!faces.empty());
            const HeadPose pose = estimate_head_pose(landmarker.landmarks(image, faces[0].box), image.width, image.height);
            MESSAGE(std::string(model) << ", " << std::string(name) << ": yaw " << pose.yaw << ", pitch " << pose.pitch << ", roll " << pose.roll
                          << ", reprojection error " << pose.reprojection_error << " px");
            CAPTURE(std::string(model));
            CAPTURE(std::string(name));
            CHECK(std::fabs(pose.yaw) < 15);
        }
    }
}
