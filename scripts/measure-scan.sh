#!/usr/bin/env bash
# Measures scan against its targets (docs/detectors.md) on a zoo that its calibration was
# not fitted on, with Neural Cleanse's anomaly index alone beside it:
#   1. `bdguard zoo make`: 40 models, seed ZOO_SEED (2; the shipped calibration's zoo
#      has seed 5), on ZOO_ARCHS (fmnist,resbn), --max-train 20000 --epochs 4 (one epoch
#      more than the calibration zoo's recipe, without its vgg models);
#   2. a `--methods scan` campaign over it with the shipped calibration (or CALIBRATION),
#      run and merged: ROC-AUC, cross-entropy, Brier score, TPR and FPR at the threshold,
#      the targets of detected all-to-one BadNets, each per attack kind;
#   3. a `--methods detect` campaign (Neural Cleanse alone, its defaults) on the same
#      zoo, run and merged the same way (skipped with NC=0).
#
#   scripts/measure-scan.sh [BDGUARD] [WORK] [CALIBRATION]
#
# Defaults: build/bdguard, scan-evaluation/, the tool's default calibration. Each step
# resumes where it stopped. Results: WORK/{scan,nc}/results_all.json (every model) and
# results_took.json (the clean models and the BadNets whose attack took; results.json and
# report.html are of every model).
set -euo pipefail
cd "$(dirname "$0")/.."
bdguard=${1:-build/bdguard}
work=${2:-scan-evaluation}
calib=()
if [[ -n ${3:-} ]]; then calib=(--calibration "$3"); fi
"$bdguard" zoo make --out "$work/zoo" --models "${ZOO_MODELS:-40}" --seed "${ZOO_SEED:-2}" \
  --max-train "${ZOO_MAX_TRAIN:-20000}" --epochs "${ZOO_EPOCHS:-4}" \
  --archs "${ZOO_ARCHS:-fmnist,resbn}" --jobs "${ZOO_JOBS:-2}"
# The BadNets whose attack took (ASR >= MIN_ASR, 50 %) and the clean models, as the
# calibration counts them (scripts/make-scan-calibration.sh).
awk -F, -v min="${MIN_ASR:-50}" '
  NR == 1 { for (i = 1; i <= NF; ++i) { if ($i == "backdoored") b = i; if ($i == "asr") a = i }
            print; next }
  $b == 0 || $a + 0 >= min' "$work/zoo/ground_truth.csv" >"$work/ground_truth_took.csv"
campaign() {  # NAME METHODS [FLAGS...]: results_all.json (every model), results_took.json
  local name=$1 methods=$2
  shift 2
  if [[ ! -f $work/$name/manifest.json ]]; then
    "$bdguard" campaign init --out "$work/$name" --models "$work/zoo/models" \
      --clean "$work/zoo/data/valid.h5" --ground-truth "$work/zoo/ground_truth.csv" \
      --methods "$methods" "$@"
  fi
  "$bdguard" campaign run "$work/$name"
  "$bdguard" campaign merge "$work/$name" --ground-truth "$work/ground_truth_took.csv"
  cp "$work/$name/results.json" "$work/$name/results_took.json"
  "$bdguard" campaign merge "$work/$name"
  cp "$work/$name/results.json" "$work/$name/results_all.json"
}
campaign scan scan "${calib[@]}"
if [[ ${NC:-1} != 0 ]]; then campaign nc detect; fi
