#!/usr/bin/env bash
# Fits scan's calibration on a labelled zoo, TrojAI's way (docs/commands/scan.md):
#   1. `bdguard zoo make`: ZOO_MODELS (40) Fashion-MNIST models, seed ZOO_SEED (1), on
#      ZOO_ARCHS (fmnist,resbn), every attack kind, --max-train 20000 --epochs 4 (the
#      recipe that WaNet and all-to-all need: docs/architectures.md), ZOO_JOBS (2) models
#      at once;
#   2. a `--methods scan` campaign over it (`campaign init`, `campaign run`) with MM-BD
#      and K-Arm, uncalibrated;
#   3. `bdguard scan calibrate` on the campaign (its clean models and the BadNets whose
#      attack took, below): K-Arm alone into OUT, the shipped default; MM-BD with K-Arm,
#      and MM-BD alone, into WORK for the record (docs/detectors.md: MM-BD does not earn
#      its place, so neither ships).
#
#   scripts/make-scan-calibration.sh [BDGUARD] [WORK] [OUT]
#
# Defaults: build/bdguard, scan-calibration/ (the zoo and the campaign), and
# scan-calibration/scan-calibration.json (copy it to models/ to ship it). Each
# step resumes where it stopped: run it again.
# The zoo's seed, size and recipe are recorded in OUT's `trained_on`. A zoo that
# measures the calibration must use another ZOO_SEED. Its time on 2 cores is in
# docs/detectors.md. ZOO_MAX_TRAIN and ZOO_EPOCHS shrink it for a trial run.
set -euo pipefail
cd "$(dirname "$0")/.."
bdguard=${1:-build/bdguard}
work=${2:-scan-calibration}
out=${3:-$work/scan-calibration.json}
"$bdguard" zoo make --out "$work/zoo" --models "${ZOO_MODELS:-40}" --seed "${ZOO_SEED:-1}" \
  --max-train "${ZOO_MAX_TRAIN:-20000}" --epochs "${ZOO_EPOCHS:-4}" \
  --archs "${ZOO_ARCHS:-fmnist,resbn}" --jobs "${ZOO_JOBS:-2}"
if [[ ! -f $work/campaign/manifest.json ]]; then
  "$bdguard" campaign init --out "$work/campaign" --models "$work/zoo/models" \
    --clean "$work/zoo/data/valid.h5" --ground-truth "$work/zoo/ground_truth.csv" --methods scan \
    --detectors mm-bd,k-arm --calibration none
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
# K-Arm's score is a log ratio, negative on most clean models: taken as it is
# (log1p would clip it at 0). MM-BD's, -log10 of a p-value, through log1p.
for detectors in k-arm mm-bd,k-arm mm-bd; do
  file=$work/scan-calibration-${detectors/,/-}.json transform=identity
  [[ $detectors == k-arm ]] && file=$out
  [[ $detectors == mm-bd ]] && transform=log1p
  "$bdguard" scan calibrate --campaign "$work/campaign" --transform "$transform" \
    --ground-truth "$work/ground_truth_took.csv" --detectors "$detectors" --out "$file" --force
done
