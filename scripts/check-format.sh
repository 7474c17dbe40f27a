#!/usr/bin/env bash
# Checks that every C++ file follows .clang-format (ctest runs it as `clang_format`).
# Exit 77 (ctest: skipped) when clang-format is not installed; setup.sh installs it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check-format: clang-format is not installed (scripts/setup.sh installs it); skipped" >&2
  exit 77
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h')
else
  mapfile -t files < <(find include src tools tests bench fuzz python -name '*.cpp' -o -name '*.h')
fi
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "check-format: run: clang-format -i \$(git ls-files '*.cpp' '*.h')" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files follow .clang-format"
