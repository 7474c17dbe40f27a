#!/usr/bin/env bash
# Configures (once) and builds bdguard into ${BUILD_DIR:-build}. Re-uses an existing build.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build}
# ccache: paths relative to the checkout, so clones and worktrees share the cache.
export CCACHE_BASEDIR=$PWD
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" "$@"
fi
# BUILD_TARGETS: only these targets (space-separated), e.g. what a test subset needs.
targets=()
if [[ -n ${BUILD_TARGETS:-} ]]; then read -r -a names <<<"$BUILD_TARGETS" && targets=(--target "${names[@]}"); fi
cmake --build "$build_dir" -j "$(nproc)" "${targets[@]}"
