#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined) into
# ${BUILD_DIR:-build-fuzz} and runs each for SECONDS seconds (default 300) from its seed
# corpus. Usage: scripts/fuzz.sh [SECONDS] [HARNESS...]
#   harnesses: fuzz_model_config fuzz_keras_weights fuzz_data (default: all three)
# Findings (crash, sanitizer report, leak, timeout, escaped exception) are written to
# $BUILD_DIR/artifacts/ and fail the script; new inputs go to $BUILD_DIR/work/<harness>.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
shift || true
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then harnesses=(fuzz_model_config fuzz_keras_weights fuzz_data); fi
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
cmake --build "$build_dir" -j "$(nproc)" --target make_corpus "${harnesses[@]}"

# Seeds: written by make_corpus (valid files and small malformed ones), plus the
# committed JSON seeds for the model_config parser.
rm -rf "$build_dir/corpus"
"$build_dir/fuzz/make_corpus" "$build_dir/corpus"
mkdir -p "$build_dir/artifacts"
# LeakSanitizer runs at the end of each input; LibTorch keeps per-process caches it
# never frees, which are not leaks of bdguard's.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for h in "${harnesses[@]}"; do
  seeds=$build_dir/corpus/seeds/${h#fuzz_}
  work=$build_dir/work/$h
  mkdir -p "$work"
  extra=()
  if [[ $h == fuzz_model_config ]]; then
    seeds="$seeds fuzz/seeds/model_config"
    extra=(-dict=fuzz/model_config.dict)
  fi
  echo "fuzz: $h for ${seconds}s (seeds: $seeds)" >&2
  # shellcheck disable=SC2086
  if ! "$build_dir/fuzz/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 \
    -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$h-" "${extra[@]}" \
    "$work" $seeds >"$build_dir/$h.log" 2>&1; then
    echo "fuzz: $h FOUND A PROBLEM; see $build_dir/$h.log and $build_dir/artifacts/" >&2
    status=1
  fi
  grep -E "^(stat::number_of_executed_units|stat::new_units_added|Done )" "$build_dir/$h.log" >&2 || true
done
exit $status
