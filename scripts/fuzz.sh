#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined) into
# ${BUILD_DIR:-build-fuzz} and runs each for SECONDS seconds (default 300) from its seed
# corpus. Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
#   harnesses: fuzz_model_config fuzz_keras_weights fuzz_data fuzz_onnx fuzz_npy fuzz_npz
#   fuzz_image_folder fuzz_calibration (default: all)
# Findings (crash, sanitizer report, leak, timeout, escaped exception) are written to
# $BUILD_DIR/artifacts/ and fail the script; new inputs go to $BUILD_DIR/work/<harness>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=(fuzz_model_config fuzz_keras_weights fuzz_data fuzz_onnx fuzz_npy fuzz_npz
    fuzz_image_folder fuzz_calibration)
fi
build_dir=${BUILD_DIR:-build-fuzz}

./scripts/setup.sh
# clang and libFuzzer (Debian 12: clang, and libclang-rt-dev for libclang_rt.fuzzer);
# only fuzzing needs them, so setup.sh does not install them.
if ! command -v clang++ >/dev/null ||
  ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
  echo "fuzz: installing clang libclang-rt-dev" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends clang libclang-rt-dev
fi
export CCACHE_BASEDIR=$PWD
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
  launcher=()
  if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBUILD_TESTING=OFF -DBDGUARD_BENCH=OFF -DBDGUARD_FUZZ=ON "${launcher[@]}"
fi
cmake --build "$build_dir" -j "$(nproc)" --target bdguard_cli make_corpus "${harnesses[@]}"

# Seeds: written by make_corpus (valid files and small malformed ones), plus the
# committed JSON seeds for the model_config parser, and for ONNX real PyTorch exports
# (../shared/fixtures/onnx, where present) and ONNX's node tests of the ops a classifier
# uses (libonnx-testdata, which setup.sh installs).
rm -rf "$build_dir/corpus"
"$build_dir/fuzz/make_corpus" "$build_dir/corpus"
onnx_seeds=$build_dir/corpus/seeds/onnx
for f in ../shared/fixtures/onnx/*.onnx; do
  if [[ -f $f ]]; then cp "$f" "$onnx_seeds/"; fi
done
for d in /usr/share/libonnx-testdata/data/node/test_{conv,gemm,reshape,maxpool_2d,averagepool_2d,batchnorm,flatten,softmax,transpose,pad,gather,concat}_*/; do
  if [[ -f $d/model.onnx ]]; then cp "$d/model.onnx" "$onnx_seeds/$(basename "$d").onnx"; fi
done
mkdir -p "$build_dir/artifacts"
# A crafted HDF5 file can make the HDF5 library ask malloc for absurd sizes (2^48
# bytes); in bdguard's normal build malloc then fails and HDF5 reports an error, so
# ASan's malloc fails the same way here instead of aborting.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp}
cli=$build_dir/bdguard
valid=$build_dir/corpus/valid

# Replays a file on which a harness timed out (or a crash file that a contained reader
# process left: libFuzzer's handlers live on in a forked child) through the real CLI
# (the ASan build) with a short read watchdog: each command must end within it, either
# accepting the file (exit code 0: the bad part is one this command does not read) or
# refusing it with exit code 1 and one error line.
replay_artifact() {
  local h=$1 file=$2 args
  case $h in
    fuzz_keras_weights)
      args=("inspect --model $file" "inspect --model $file --arch deepid"
        "inspect --model $file --arch-from $valid/tiny_arch.json") ;;
    fuzz_data) args=("eval --model $valid/tiny.h5 --clean $file") ;;
    *) return 1 ;;
  esac
  for a in "${args[@]}"; do
    local err rc=0
    # shellcheck disable=SC2086
    err=$(BDGUARD_READ_TIMEOUT=5 timeout 120 "$cli" $a 2>&1 >/dev/null) || rc=$?
    if ! [[ $rc -eq 0 || ($rc -eq 1 && $(wc -l <<<"$err") -eq 1 && $err == error:*) ]]; then
      echo "fuzz: bdguard $a: exit code $rc, stderr: $err" >&2
      return 1
    fi
    echo "fuzz:   bdguard $a -> exit code $rc ${err:0:200}" >&2
  done
}

status=0
for h in "${harnesses[@]}"; do
  seeds=$build_dir/corpus/seeds/${h#fuzz_}
  work=$build_dir/work/$h
  mkdir -p "$work"
  if [[ $h == fuzz_model_config ]]; then
    seeds="$seeds fuzz/seeds/model_config"
    # Pure C++: every timeout is a finding.
    extra=(-dict=fuzz/model_config.dict)
  elif [[ $h == fuzz_calibration ]]; then
    seeds=fuzz/seeds/calibration  # committed: the shipped file and a hand-made one
    extra=()
  elif [[ $h == fuzz_onnx ]]; then
    # Pure C++ too. -max_len holds the 2.8 MB ResNet seed whole (libFuzzer's default
    # cuts inputs at 1 MiB).
    extra=(-dict=fuzz/onnx.dict -max_len=4194304)
  else
    # The HDF5 C library loops forever on some crafted files; bdguard's answer is the
    # read watchdog (fileio.h), so a timeout here is replayed through the CLI below
    # instead of ending the run.
    extra=(-fork=1 -ignore_timeouts=1)
  fi
  echo "fuzz: $h for ${seconds}s (seeds: $seeds)" >&2
  # shellcheck disable=SC2086
  if ! "$build_dir/fuzz/$h" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$h-" "${extra[@]}" \
    "$work" $seeds >"$build_dir/$h.log" 2>&1; then
    echo "fuzz: $h FOUND A PROBLEM; see $build_dir/$h.log and $build_dir/artifacts/" >&2
    status=1
  fi
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done |#[0-9]+: cov)" \
    "$build_dir/$h.log" | tail -3 >&2 || true
  for t in "$build_dir/artifacts/$h"-{timeout,crash}-*; do
    [[ -e $t ]] || continue
    echo "fuzz: $h left $t; replaying it through the CLI" >&2
    replay_artifact "$h" "$t" || status=1
  done
done
exit $status
