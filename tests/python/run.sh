#!/usr/bin/env bash
# Runs the Python module's tests with pytest (ctest's `python` entry).
#   run.sh PYTHON MODULE_DIR TINY_DIR CLI [SKIP_REASON]
# Exit 77 (ctest: skipped) with a message when the module was not built or pytest is
# missing.
set -uo pipefail
python=$1 module_dir=$2 tiny=$3 cli=$4 skip=${5:-}
if [[ -n $skip ]]; then
  echo "skipped: the Python module is not built: $skip"
  exit 77
fi
if ! "$python" -c "import pytest" 2>/dev/null; then
  echo "skipped: pytest not found for $python (apt-get install python3-pytest)"
  exit 77
fi
export PYTHONPATH=$module_dir${PYTHONPATH:+:$PYTHONPATH}
export BDGUARD_TINY_DIR=$tiny BDGUARD_CLI=$cli
exec "$python" -m pytest -q -p no:cacheprovider "$(dirname "$0")"
