// facet: face analysis on the CPU. The umbrella header: include this and link facet::facet.
#pragma once
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "io/annotate.hpp"
#include "io/faces_json.hpp"
#include "io/image.hpp"
#include "io/weights.hpp"
#include "kernels/kernel_set.hpp"
#include "models/mtcnn.hpp"
#include "models/retinaface.hpp"
#include "post/align.hpp"
#include "post/face.hpp"
#include "post/nms.hpp"
