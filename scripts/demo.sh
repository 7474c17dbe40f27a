#!/usr/bin/env bash
# Installs what is missing, builds (re-using an existing build) and runs bdguard's main job.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh >/dev/null
csaw=../shared/fixtures/csaw
if [[ ! -f $csaw/lab3_bd_weights.h5 ]]; then
  echo "demo: $csaw is absent" >&2
  exit 1
fi
./build/bdguard predict --model "$csaw/lab3_bd_weights.h5" --arch deepid "$csaw"/images/*.png
