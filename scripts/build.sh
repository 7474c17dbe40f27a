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
cmake --build "$build_dir" -j "$(nproc)"
