#!/usr/bin/env bash
# Installs what bdguard needs from Debian 12's archive. Idempotent: installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libtorch-dev libopenblas0-pthread
  libhdf5-dev hdf5-tools
  nlohmann-json3-dev libcli11-dev libstb-dev libssl-dev zlib1g-dev
  libgtest-dev googletest libbenchmark-dev
  gnuplot-nox dataset-fashion-mnist chromium
  libtomlplusplus-dev
  libonnx-dev libprotobuf-dev libonnx-testdata
  slurmctld slurmd slurm-client munge
  pybind11-dev python3-dev python3-numpy python3-pytest python3-torch
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch links libblas.so.3; the reference BLAS makes Dense layers ~15x slower.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ $blas != *openblas* ]]; then
  echo "setup: error: libblas.so.3 resolves to '$blas', not OpenBLAS;" \
    "run: update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2
  exit 1
fi
