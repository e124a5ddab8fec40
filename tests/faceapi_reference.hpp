// What the face-api parity tests share (tests/faceapi): a converted face-api model, skipped with a
// message when setup has not made it, and a committed reference JSON file.
#pragma once
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <facet/io/json.hpp>
#include <facet/models/graph.hpp>

#include "test_util.hpp"

namespace facet::test {

// The path of weights/`file`, or "" (with a message) when setup has not made it.
inline std::string faceapi_model_path(const std::string& file) {
    const std::string path = weights_path(file);
    if (std::ifstream(path).good()) return path;
    MESSAGE("skipped: " << path << " is missing (scripts/fetch-weights.sh converts it)");
    return "";
}

// weights/`file` loaded, or null (with a message) when setup has not made it.
inline std::shared_ptr<const GraphModel> load_faceapi_model(const std::string& file) {
    const std::string path = faceapi_model_path(file);
    return path.empty() ? nullptr : GraphModel::from_file(path);
}

// The JSON file at `rel` in the source tree.
inline json::Value load_source_json(const std::string& rel) {
    std::ifstream f(source_path(rel));
    REQUIRE(f);
    std::stringstream text;
    text << f.rdbuf();
    return json::parse(text.str());
}

} // namespace facet::test
