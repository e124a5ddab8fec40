// facet kernels for AVX2 + FMA. Compile with -mavx2 -mfma (the facet::facet CMake target does).
#include "../kernels/kernel_set_impl.hpp"

const facet::KernelSet& facet::kernel_set_avx2() { return simd::make_kernel_set<xsimd::fma3<xsimd::avx2>>("avx2"); }
