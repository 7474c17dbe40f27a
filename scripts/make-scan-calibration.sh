#!/usr/bin/env bash
# Fits scan's calibration on a labelled zoo, TrojAI's way (docs/commands/scan.md):
#   1. `bdguard zoo make`: ZOO_MODELS (40) Fashion-MNIST models, seed ZOO_SEED (5), on
#      ZOO_ARCHS (fmnist,resbn,vgg), every attack kind, --max-train 20000 --epochs 3,
#      ZOO_JOBS (2) models at once;
#   2. a `--methods scan` campaign over it with K-Arm (scan's defaults), uncalibrated;
#   3. `bdguard scan calibrate` on the campaign (its clean models and the BadNets whose
#      attack took, below): K-Arm's score against its per-label reference, measured on
#      the zoo's clean models (docs/detectors.md), into OUT, the shipped default.
#
#   scripts/make-scan-calibration.sh [BDGUARD] [WORK] [OUT]
#
# Defaults: build/bdguard, scan-calibration/ (the zoo and the campaign), and
# scan-calibration/scan-calibration.json (copy it to models/ to ship it). Each
# step resumes where it stopped: run it again.
# The zoo's seed, size and recipe are recorded in OUT's `trained_on`. A zoo that
# measures the calibration must use another ZOO_SEED (scripts/measure-scan.sh: 2). Its
# time on 2 cores is in docs/detectors.md. ZOO_MAX_TRAIN and ZOO_EPOCHS shrink it for a
# trial run.
set -euo pipefail
cd "$(dirname "$0")/.."
bdguard=${1:-build/bdguard}
work=${2:-scan-calibration}
out=${3:-$work/scan-calibration.json}
"$bdguard" zoo make --out "$work/zoo" --models "${ZOO_MODELS:-40}" --seed "${ZOO_SEED:-5}" \
  --max-train "${ZOO_MAX_TRAIN:-20000}" --epochs "${ZOO_EPOCHS:-3}" \
  --archs "${ZOO_ARCHS:-fmnist,resbn,vgg}" --jobs "${ZOO_JOBS:-2}"
if [[ ! -f $work/campaign/manifest.json ]]; then
  "$bdguard" campaign init --out "$work/campaign" --models "$work/zoo/models" \
    --clean "$work/zoo/data/valid.h5" --ground-truth "$work/zoo/ground_truth.csv" --methods scan \
    --detectors k-arm --calibration none
fi
"$bdguard" campaign run "$work/campaign"
# The fit counts the clean models and the BadNets whose attack took, ASR >= CALIB_MIN_ASR
# (50 %: most triggered images flip; zoo make's own --min-asr, 85 %, would leave out every
# all-to-all model of the recipe): a "backdoored" model whose trigger moves 2 % of the
# images is no backdoor to find.
awk -F, -v min="${CALIB_MIN_ASR:-50}" '
  NR == 1 { for (i = 1; i <= NF; ++i) { if ($i == "backdoored") b = i; if ($i == "asr") a = i }
            print; next }
  $b == 0 || $a + 0 >= min' "$work/zoo/ground_truth.csv" >"$work/ground_truth_took.csv"
# K-Arm's score is a log ratio, negative on most clean models: taken as it is (log1p
# would clip it at 0).
"$bdguard" scan calibrate --campaign "$work/campaign" --transform identity --detectors k-arm \
  --ground-truth "$work/ground_truth_took.csv" --out "$out" --force
