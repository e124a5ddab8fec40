// facet kernels for SSE4.1. Compile with -msse4.1 (the facet::facet CMake target does).
#define FACET_WITH_ISA_OBJECTS 1 // this file is one of them
#include "../kernels/kernel_set_impl.hpp"

const facet::KernelSet& facet::kernel_set_sse41() { return simd::make_kernel_set<Isa::sse41>(); }
