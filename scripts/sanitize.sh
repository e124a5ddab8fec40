#!/usr/bin/env bash
# The sanitizer runs (README, "Threat model and guarantees"); .ci/run calls this after the tests.
#
# 1. build-asan: GCC with AddressSanitizer (LeakSanitizer included) and UndefinedBehaviorSanitizer,
#    -fno-sanitize-recover=all so that any undefined behaviour fails its test. Runs the whole ctest
#    suite (doctest cases, CLI scripts, bad-input table, examples) except install_and_find_package
#    and headers_alone, which build uninstrumented programs from the headers: nothing of them runs
#    under the sanitizers. The Python module is not built (an instrumented extension cannot be
#    loaded by an uninstrumented python3).
# 2. build-tsan: clang with ThreadSanitizer, for the concurrency tests alone
#    (tests/test_concurrency.cpp as facet-concurrency-tests: facet's thread pool, and detector
#    clones in 4 threads, each with 1 or 2 threads inside). The pool (include/facet/core/parallel.hpp)
#    is std::thread, POSIX mutexes and condition variables and atomics, all of which TSan sees, so
#    no tool or suppression file is needed: a report is a real race.
#
# Usage: scripts/sanitize.sh [asan|tsan]   (both by default)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- asan tsan
jobs=$(nproc)
scripts/install-deps.sh clang libclang-rt-dev

for part in "$@"; do
  case "$part" in
  asan)
    start=$SECONDS
    san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1" \
      -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DFACET_BUILD_BENCHMARKS=OFF -DFACET_BUILD_PYTHON=OFF >/dev/null
    cmake --build build-asan -j"$jobs"
    ASAN_OPTIONS="detect_leaks=1:check_initialization_order=1:strict_init_order=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
      ctest --test-dir build-asan --output-on-failure -j"$jobs" -E '^(install_and_find_package|headers_alone)$'
    echo "facet: AddressSanitizer + UndefinedBehaviorSanitizer suite passed in $((SECONDS - start)) s"
    ;;
  tsan)
    start=$SECONDS
    cmake -S . -B build-tsan -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -gline-tables-only" -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" -DFACET_BUILD_BENCHMARKS=OFF -DFACET_BUILD_PYTHON=OFF >/dev/null
    cmake --build build-tsan -j"$jobs" --target facet-concurrency-tests
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" build-tsan/bin/facet-concurrency-tests
    echo "facet: ThreadSanitizer concurrency tests passed in $((SECONDS - start)) s"
    ;;
  *) echo "usage: scripts/sanitize.sh [asan|tsan]..." >&2; exit 2 ;;
  esac
done
