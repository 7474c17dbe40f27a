#!/usr/bin/env bash
# Builds bdguard with AddressSanitizer and UndefinedBehaviorSanitizer into
# ${ASAN_BUILD_DIR:-build-asan} (re-using an existing build) and runs the unit, CLI and
# hostile-input tests there. Any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
# No tiny models: the tests that train on them (defenses, detection CLI) skip here.
# Only what the labels below run: the golden, Slurm and conformance tests are not built.
BUILD_TARGETS="bdguard_cli unit_tests cli_tests hostile_tests hostile_corpus" \
  ./scripts/build.sh -DBDGUARD_SANITIZE=ON -DBDGUARD_BENCH=OFF -DBDGUARD_TINY_MODELS=OFF
# No ASAN_OPTIONS are needed (LibTorch 1.13 on CPU runs clean, leak checking included);
# UBSan prints a stack and stops at the first report.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" -L 'unit|cli|hostile'
