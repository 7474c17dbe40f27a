#!/usr/bin/env bash
# Installs what is missing, builds (re-using an existing build) and runs bdguard's main
# job: `bdguard demo`, the whole defense on the BadNet shipped with bdguard, with data
# made from Debian's Fashion-MNIST, into ./bdguard-demo/ (extra arguments go to it).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh >/dev/null
./build/bdguard demo "$@"
