#!/usr/bin/env bash
# Fits scan's calibration on a labelled zoo, TrojAI's way (docs/commands/scan.md):
#   1. `bdguard zoo make`: ZOO_MODELS (40) Fashion-MNIST models, seed ZOO_SEED (1), on
#      fmnist, resbn and vgg, every attack kind, --max-train 20000 --epochs 4 (the recipe
#      that WaNet and all-to-all need: docs/architectures.md);
#   2. a `--methods scan` campaign over it (`campaign init`, `campaign run`);
#   3. `bdguard scan calibrate` on the campaign, into OUT.
#
#   scripts/make-scan-calibration.sh [BDGUARD] [WORK] [OUT]
#
# Defaults: build/bdguard, scan-calibration/ (the zoo and the campaign), and
# scan-calibration/calibration.json. Each step resumes where it stopped: run it again.
# The zoo's seed, size and recipe are recorded in OUT's `trained_on`. A zoo that
# measures the calibration must use another ZOO_SEED. About 40 minutes of training and
# 10 of scanning on 2 cores. ZOO_MAX_TRAIN and ZOO_EPOCHS shrink it for a trial run.
set -euo pipefail
cd "$(dirname "$0")/.."
bdguard=${1:-build/bdguard}
work=${2:-scan-calibration}
out=${3:-$work/calibration.json}
"$bdguard" zoo make --out "$work/zoo" --models "${ZOO_MODELS:-40}" --seed "${ZOO_SEED:-1}" \
  --max-train "${ZOO_MAX_TRAIN:-20000}" --epochs "${ZOO_EPOCHS:-4}" --threads "$(nproc)"
if [[ ! -f $work/campaign/manifest.json ]]; then
  "$bdguard" campaign init --out "$work/campaign" --models "$work/zoo/models" \
    --clean "$work/zoo/data/valid.h5" --ground-truth "$work/zoo/ground_truth.csv" --methods scan
fi
"$bdguard" campaign run "$work/campaign"
"$bdguard" scan calibrate --campaign "$work/campaign" --out "$out" --force
