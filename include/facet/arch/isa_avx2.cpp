// facet kernels for AVX2 + FMA. Compile with -mavx2 -mfma (the facet::facet CMake target does).
#define FACET_WITH_ISA_OBJECTS 1 // this file is one of them
#include "../kernels/kernel_set_impl.hpp"

const facet::KernelSet& facet::kernel_set_avx2() { return simd::make_kernel_set<Isa::avx2>(); }
