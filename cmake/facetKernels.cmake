# Per-instruction-set compile flags of facet's kernel sources (include/facet/arch/isa_*.cpp).
#
# Source-file properties are scoped to a directory, so these functions run in the consumer's
# directory: facetConfig.cmake calls them where find_package(facet) is called.

# Flags for each kernel source in ARCH_DIR, set in the calling directory. (GCC 12 warns about
# _mm512_undefined_ps() and its "__Y = __Y" idiom inside its own AVX-512 headers, as "maybe" or
# plain uninitialized depending on inlining; both warnings are silenced for that file. Clang has
# no -Wmaybe-uninitialized and warns about the unknown option, an error under -Werror, so only
# GCC gets it.)
# -mavx512bf16 lets the AVX-512 object hold the bf16 kernels, which run only where cpuid says the
# CPU has AVX512_BF16 (kernels/kernel_set_impl.hpp). It implies AVX512BW, which the compiler may
# then use anywhere in the object, so BW is named too, and the object runs only where cpuid
# reports both AVX512F and AVX512BW (kernel_set.hpp, cpu_supports).
function(facet_set_isa_flags arch_dir)
  set_source_files_properties(${arch_dir}/isa_sse41.cpp PROPERTIES COMPILE_OPTIONS "-msse4.1")
  set_source_files_properties(${arch_dir}/isa_avx2.cpp PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma")
  set_source_files_properties(${arch_dir}/isa_avx512.cpp PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512bf16;-mavx2;-mfma;$<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>;-Wno-uninitialized")
endfunction()

# Adds the kernel sources to TARGET's interface, so every program linking it compiles them.
function(facet_add_kernel_sources target arch_dir)
  target_sources(${target} INTERFACE
    $<BUILD_INTERFACE:${arch_dir}/isa_sse41.cpp;${arch_dir}/isa_avx2.cpp;${arch_dir}/isa_avx512.cpp>)
endfunction()
