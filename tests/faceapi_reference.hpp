// tests/faceapi/reference.json: what face-api itself computed on the crops of tests/faceapi
// (tests/faceapi/make_reference.mjs), read by the face-api parity tests.
#pragma once
#include <facet/io/json.hpp>

#include <fstream>
#include <sstream>

#include "test_util.hpp"

namespace facet::test {

inline json::Value load_faceapi_reference() {
    std::ifstream f(source_path("tests/faceapi/reference.json"));
    REQUIRE(f);
    std::stringstream text;
    text << f.rdbuf();
    return json::parse(text.str());
}

} // namespace facet::test
