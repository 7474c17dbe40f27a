#!/usr/bin/env bash
# Measures repair against issue 26's targets (docs/defenses.md, "Repair on a zoo nobody
# tuned it on") on BadNets that no recipe was tuned on:
#   1. `bdguard zoo make` for each SEED:MODELS of ZOOS ("3:20 4:5": 20 BadNets of seed 3
#      and 5 of seed 4), spread evenly over patch, blended, SIG, WaNet and all-to-all, on
#      ZOO_ARCHS (fmnist: the demo's CNN), 4 epochs on 20,000 training images, two trained
#      at once;
#   2. the defender's data, per zoo: the first 2,000 images of its clean validation file
#      (`bdguard data take`), and the first 1,000 of each BadNet's poisoned validation
#      file (compare reports it and never uses it);
#   3. `bdguard compare` on each BadNet with repair's `auto` methods on 2 threads, one
#      BadNet at a time, its real ASR on the zoo's test files (never read by a choice):
#      every method's proxy and real ASR, and the pick repair's rule makes on them
#      (compare.json's `repair`; compare runs the same candidates repair would);
#   4. WORK/repair.csv (a row per BadNet and method, `picked` 1 for repair's pick) and
#      WORK/summary.json (the targets per attack kind, each method per kind, how well the
#      proxy ranks the methods), printed; the BadNets whose attack took (ASR >= MIN_ASR,
#      50 %) in WORK/summary_took.json.
#
#   5. WORK/tuning.json: per method, how often each value of its tuned setting was chosen.
#
#   scripts/measure-repair.sh [BDGUARD] [WORK]
#
# Defaults: build/bdguard, repair-evaluation/. Each step resumes where it stopped;
# SUMMARY_ONLY=1 makes and compares nothing and tables the compares finished so far.
# METHODS replaces the candidates (default: repair's auto ones); COMPARE_ARGS adds flags
# to every compare ("--set tune=off": each method with its default setting only).
set -euo pipefail
cd "$(dirname "$0")/.."
bdguard=${1:-build/bdguard}
work=${2:-repair-evaluation}
command -v jq >/dev/null || { apt-get update -q && apt-get install -y -q jq; }
methods=${METHODS:-finetune,fine-pruning,nc-unlearn,clp,ft-sam,fst}  # repair --methods auto
mkdir -p "$work/data" "$work/compare"
: >"$work/ground_truth.jsonl"
for spec in ${ZOOS:-3:20 4:5}; do
  seed=${spec%%:*} models=${spec##*:}
  zoo=$work/zoo-$seed
  if [[ ${SUMMARY_ONLY:-0} != 1 ]]; then
    "$bdguard" zoo make --out "$zoo" --models "$models" --seed "$seed" \
      --kinds badnets,blended,sig,wanet,all-to-all --clean-fraction 0 \
      --max-train "${ZOO_MAX_TRAIN:-20000}" --epochs "${ZOO_EPOCHS:-4}" \
      --archs "${ZOO_ARCHS:-fmnist}" --jobs "${ZOO_JOBS:-2}" --quiet
  fi
  clean=$work/data/valid2000_zoo$seed.h5
  [[ -f $clean ]] || "$bdguard" data take "$zoo/data/valid.h5" --first 2000 --out "$clean"
  awk -F, -v seed="$seed" 'NR > 1 {
    printf "{\"model\":\"z%s_%s\",\"kind\":\"%s\",\"arch\":\"%s\",\"poison_rate\":%s,\"zoo_asr\":%s}\n",
      seed, $1, $4, $5, $6, $7 }' "$zoo/ground_truth.csv" >>"$work/ground_truth.jsonl"
  for model in "$zoo"/models/*.h5; do
    [[ ${SUMMARY_ONLY:-0} == 1 ]] && break
    base=$(basename "$model" .h5)
    name=z${seed}_$base
    out=$work/compare/$name
    [[ -f $out/compare.json ]] && continue
    pv=$work/data/bd_valid_$name.h5
    [[ -f $pv ]] || "$bdguard" data take "$zoo/data/bd_valid_$base.h5" --first 1000 --out "$pv"
    echo "== $name ($(date +%T))"
    # shellcheck disable=SC2086  # COMPARE_ARGS: extra flags, e.g. "--set tune=off"
    "$bdguard" compare --threads "${THREADS:-2}" --seed 0 --methods "$methods" --force ${COMPARE_ARGS:-} \
      --model "$model" --valid "$clean" --poisoned-valid "$pv" --test "$zoo/data/test.h5" \
      --poisoned-test "$zoo/data/bd_test_$base.h5" --out "$out" >"$work/compare/$name.log"
    grep "^repair" "$work/compare/$name.log" || true
  done
done

# One JSON row per BadNet and method (the BadNet itself as method "(badnet)").
for f in "$work"/compare/*/compare.json; do
  name=$(basename "$(dirname "$f")")
  jq -c --arg name "$name" --slurpfile gt "$work/ground_truth.jsonl" '
    ($gt[] | select(.model == $name)) as $g
    | . as $c
    | ($c.repair.method // "") as $pick
    | ($c.baseline | {method: "(badnet)", clean_accuracy, asr, natural_rate, proxy_asr,
        valid_accuracy: .valid.clean_accuracy, seconds: $c.seconds, accuracy_drop: 0}),
      ($c.rows[] | select(.ok) | {method, clean_accuracy, asr, natural_rate, proxy_asr,
        valid_accuracy: .valid.clean_accuracy, seconds, accuracy_drop})
    | . + {model: $name, kind: $g.kind, arch: $g.arch, poison_rate: $g.poison_rate,
           zoo_asr: $g.zoo_asr, base_accuracy: $c.baseline.clean_accuracy,
           base_asr: $c.baseline.asr, picked: (if .method == $pick then 1 else 0 end),
           attributable: (.asr - (.natural_rate // 0))}' "$f"
done >"$work/rows.jsonl"
jq -r -s '(["model","kind","arch","poison_rate","method","picked","clean_accuracy","asr",
  "natural_rate","attributable","accuracy_drop","proxy_asr","valid_accuracy","seconds"]) as $k
  | ($k | join(",")), (.[] | [.[$k[]]] | map(if . == null then "" else tostring end) | join(","))' \
  "$work/rows.jsonl" >"$work/repair.csv"

summary='
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r2: if . == null then null else (. * 100 | round) / 100 end;
  def targets: {n: length,
    asr_under_5: (map(select(.asr < 5)) | length),
    median_attributable: (map(.attributable) | median | r2),
    within_3_points: (map(select(.base_accuracy - .clean_accuracy <= 3)) | length),
    asr_under_5_and_within_3: (map(select(.asr < 5 and .base_accuracy - .clean_accuracy <= 3)) | length),
    median_asr: (map(.asr) | median | r2), median_drop: (map(.accuracy_drop) | median | r2),
    max_seconds: (map(.seconds) | max | r2)};
  . as $all
  | ($all | map(select(.method == "(badnet)"))) as $bad
  | ($all | map(select(.picked == 1))) as $picks
  | ($all | map(select(.method != "(badnet)"))) as $rows
  | {badnets: ($bad | {n: length, median_accuracy: (map(.clean_accuracy) | median | r2),
       median_asr: (map(.asr) | median | r2), max_seconds: (map(.seconds) | max | r2)}),
     repair: ($picks | targets),
     repair_by_kind: ($picks | group_by(.kind) | map({kind: .[0].kind} + targets)),
     repair_picks: ($picks | group_by(.method) | map({method: .[0].method, n: length})),
     not_picked: ([$bad[].model] - [$picks[].model]),
     by_method: ($rows | group_by(.method) | map({method: .[0].method} + targets)),
     by_method_and_kind: ($rows | group_by(.method + " " + .kind)
       | map({method: .[0].method, kind: .[0].kind} + targets)),
     # How the proxy ranks the methods: per BadNet, the method pairs it orders as the
     # real ASR does (pairs whose real ASRs are within 1 point of each other left out).
     proxy_ranking: ($rows | group_by(.model) | map(
       . as $m | [range(0; length) as $i | range($i + 1; length) as $j
         | [$m[$i], $m[$j]] | select((.[0].asr - .[1].asr) | fabs > 1)
         | (((.[0].proxy_asr - .[1].proxy_asr) * (.[0].asr - .[1].asr)) > 0)] as $pairs
       | {model: .[0].model, kind: .[0].kind, pairs: ($pairs | length),
          concordant: ($pairs | map(select(.)) | length)})
       | {pairs: (map(.pairs) | add), concordant: (map(.concordant) | add),
          by_kind: (group_by(.kind) | map({kind: .[0].kind, pairs: (map(.pairs) | add),
            concordant: (map(.concordant) | add)}))}),
     # The lowest real ASR within 3 points of each BadNet: what a choice made on the
     # test files would get (for reference; no choice may be made so).
     oracle: ($rows | map(select(.base_accuracy - .clean_accuracy <= 3)) | group_by(.model)
       | map(min_by(.asr)) | targets)}'
jq -s "$summary" "$work/rows.jsonl" >"$work/summary.json"
jq -s --argjson min "${MIN_ASR:-50}" "map(select(.zoo_asr >= \$min)) | $summary" \
  "$work/rows.jsonl" >"$work/summary_took.json"
jq -c '.repair, .repair_by_kind[], .repair_picks, .oracle, .proxy_ranking' "$work/summary.json"
jq -c '.repair, .repair_by_kind[], .repair_picks, .oracle, .proxy_ranking' "$work/summary_took.json"

# The epoch choice by the proxy against the choice by held-out accuracy alone, from the
# same training runs (each epoch's figures): the ASR on the poisoned validation images
# (never used by a choice) and the held-out accuracy of the epoch each rule keeps.
for f in "$work"/compare/*/compare.json; do
  jq -c --arg name "$(basename "$(dirname "$f")")" '.rows[] | select(.ok)
    | select(.figures.kept_by == "proxy") | .method as $method | .figures as $f
    | ($f.epochs | sort_by(-.holdout_accuracy, .epoch) | .[0]) as $acc
    | ($f.epochs[] | select(.epoch == $f.best_epoch)) as $kept
    | {model: $name, method: $method, accuracy_epoch: $acc.epoch, proxy_epoch: $kept.epoch,
       accuracy_rule: {holdout_accuracy: $acc.holdout_accuracy, valid_asr: $acc.asr},
       proxy_rule: {holdout_accuracy: $kept.holdout_accuracy, valid_asr: $kept.asr}}' "$f"
done >"$work/epoch_choice.jsonl"
jq -s -c '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  group_by(.method) | map({method: .[0].method, runs: length,
    other_epoch: map(select(.accuracy_epoch != .proxy_epoch)) | length,
    valid_asr_median: {accuracy_rule: (map(.accuracy_rule.valid_asr) | median),
                       proxy_rule: (map(.proxy_rule.valid_asr) | median)},
    valid_asr_mean: {accuracy_rule: (map(.accuracy_rule.valid_asr) | add / length),
                     proxy_rule: (map(.proxy_rule.valid_asr) | add / length)},
    holdout_accuracy_mean: {accuracy_rule: (map(.accuracy_rule.holdout_accuracy) | add / length),
                            proxy_rule: (map(.proxy_rule.holdout_accuracy) | add / length)}})[]' \
  "$work/epoch_choice.jsonl" | tee "$work/epoch_choice.json"

# The setting each method chose per BadNet (figures.tuning), counted per value.
for f in "$work"/compare/*/compare.json; do
  jq -c '.rows[] | select(.ok) | select(.figures.tuning.tuned == true)
    | {method, setting: .figures.tuning.setting, chosen: .figures.tuning.chosen}' "$f"
done | jq -s -c 'group_by(.method) | map({method: .[0].method, setting: .[0].setting,
    chosen: (group_by(.chosen) | map({value: .[0].chosen, n: length}))})' | tee "$work/tuning.json"
