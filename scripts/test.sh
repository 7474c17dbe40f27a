#!/usr/bin/env bash
# Installs what is missing, builds (re-using an existing build) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)"
# The unit, CLI and hostile-input tests again, built with ASan and UBSan into build-asan/
# (BDGUARD_SKIP_SANITIZE=1 skips this for a quick local run).
if [[ ${BDGUARD_SKIP_SANITIZE:-0} != 1 ]]; then
  ./scripts/test-sanitize.sh
fi
