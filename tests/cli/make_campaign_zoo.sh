#!/usr/bin/env bash
# Writes the campaign tests' model zoo into OUT (once per build, from tests/CMakeLists.txt):
#   OUT/models/{bd_a,bd_b,clean_a,clean_b}.h5  four small Fashion-MNIST nets from
#       `bdguard attack badnets` (--max-train 2000 --epochs 1): two BadNets (targets 0
#       and 3), two trained on clean images only (--poison-rate 0)
#   OUT/data/{valid,bd_valid,test,bd_test}.h5  bd_a's data files (target 0)
#   OUT/truth.csv                              model,backdoored,target
# Usage: make_campaign_zoo.sh BDGUARD OUT
set -euo pipefail
bdguard=$1
out=$2
if [[ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]]; then
  echo "make_campaign_zoo: Fashion-MNIST is absent; the campaign tests will skip" >&2
  rm -rf "$out" && mkdir -p "$out"
  exit 0
fi
rm -rf "$out" "$out.tmp"
mkdir -p "$out.tmp/models" "$out.tmp/data"
train() { # NAME ARGS...
  local name=$1
  shift
  "$bdguard" attack badnets --out "$out.tmp/src/$name" --max-train 2000 --epochs 1 --threads 2 \
    --quiet "$@" >/dev/null
  cp "$out.tmp/src/$name/bd_net.h5" "$out.tmp/models/$name.h5"
}
train bd_a --seed 1 --target 0
train bd_b --seed 2 --target 3
train clean_a --seed 3 --poison-rate 0
train clean_b --seed 4 --poison-rate 0
cp "$out.tmp/src/bd_a/data/"{valid,bd_valid,test,bd_test}.h5 "$out.tmp/data/"
printf 'model,backdoored,target\nbd_a,1,0\nbd_b,1,3\nclean_a,0,\nclean_b,0,\n' >"$out.tmp/truth.csv"
rm -rf "$out.tmp/src"
mv "$out.tmp" "$out"
