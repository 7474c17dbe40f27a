"""Shared fixtures of the Python module's tests: the tests' tiny models (build/tiny,
BDGUARD_TINY_DIR) and the command-line tool (BDGUARD_CLI) whose JSON the module's
dicts must equal."""

import json
import os
import subprocess

import pytest

TINY = os.environ.get("BDGUARD_TINY_DIR", "")
CLI = os.environ.get("BDGUARD_CLI", "")


def tiny_path(*parts):
    path = os.path.join(TINY, *parts)
    if not TINY or not os.path.exists(path):
        pytest.skip(f"tiny models not built ({path}); see tests/fixtures/make_tiny_models.sh")
    return path


def run_cli(*args):
    """The tool's JSON document for `bdguard ARGS --json --quiet`."""
    if not CLI or not os.path.exists(CLI):
        pytest.skip("the bdguard tool (BDGUARD_CLI) is not built")
    out = subprocess.run([CLI, *args, "--json", "--quiet", "--threads", "2"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def cli_error(*args):
    """The one line `bdguard ARGS` prints on stderr when it fails, without 'error: '."""
    if not CLI or not os.path.exists(CLI):
        pytest.skip("the bdguard tool (BDGUARD_CLI) is not built")
    out = subprocess.run([CLI, *args], capture_output=True, text=True)
    assert out.returncode != 0
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ")
    return line[len("error: "):]


@pytest.fixture(scope="session")
def badnet():
    """(model path, data folder) of the tiny BadNet (target label 3)."""
    return tiny_path("badnet", "bd_net.h5"), tiny_path("badnet", "data")


@pytest.fixture(scope="session")
def bdguard_module():
    import bdguard

    bdguard.set_threads(2)
    return bdguard
