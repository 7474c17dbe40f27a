"""bdguard.scan: the CLI's scan.json, from arrays, and its default calibration."""

import json
import os

import pytest

from conftest import run_cli
from test_detect_defend import same

SHORT = ["--mm-starts", "4", "--mm-steps", "40", "--k-arm-steps", "60", "--seed", "1"]
SHORT_KW = dict(mm_starts=4, mm_steps=40, k_arm_steps=60, seed=1)


@pytest.fixture(scope="module")
def model_and_clean(bdguard_module, badnet):
    model_path, data = badnet
    model = bdguard_module.load(model_path)
    return model, bdguard_module.read_data(os.path.join(data, "valid.h5"), model)[0]


def test_scan_equals_cli_scan(bdguard_module, badnet, model_and_clean, tmp_path):
    model_path, data = badnet
    model, x = model_and_clean
    want = run_cli("scan", "--model", model_path, "--clean", os.path.join(data, "valid.h5"),
                   "--calibration", "none", "--out", str(tmp_path / "cli"), *SHORT)
    got = bdguard_module.scan(model, x, calibration=None, out=str(tmp_path / "py"), **SHORT_KW)
    same(got, want)
    assert [d["name"] for d in got["detectors"]] == ["mm-bd", "k-arm"]
    assert (tmp_path / "py" / "scan.json").exists()
    assert (tmp_path / "py" / "triggers").is_dir()


def test_scan_without_data_runs_mm_bd_alone(bdguard_module, model_and_clean):
    model, _ = model_and_clean
    got = bdguard_module.scan(model, calibration=None, mm_starts=4, mm_steps=40, seed=1)
    assert [d["name"] for d in got["detectors"]] == ["mm-bd"]
    assert got["settings"]["no_data"] is True
    assert 0 <= got["probability"] <= 1


def test_scan_default_calibration_is_the_shipped_one(bdguard_module, model_and_clean):
    here = os.path.dirname(bdguard_module.__file__)
    shipped = os.path.join(here, "scan-calibration.json")
    assert os.path.exists(shipped), "the build copies models/scan-calibration.json beside the package"
    model, x = model_and_clean
    got = bdguard_module.scan(model, x, k_arm_steps=200, seed=1)
    assert got["calibration"]["file"] == shipped
    assert got["calibration"]["default"] is True
    assert [d["name"] for d in got["detectors"]] == ["k-arm"]
    with open(shipped, encoding="utf-8") as f:
        assert got["calibration"]["trained_on"] == json.load(f)["trained_on"]
    # Without data no calibration ships: the uncalibrated rule.
    none = bdguard_module.scan(model, mm_starts=4, mm_steps=40, seed=1)
    assert none["calibration"]["file"] is None
    assert none["calibration"]["default"] is False


def test_scan_bad_input_is_a_bdguard_error(bdguard_module, model_and_clean):
    model, x = model_and_clean
    with pytest.raises(bdguard_module.InvalidArgument, match="k-arm, which needs clean images"):
        bdguard_module.scan(model, detectors=["k-arm"], calibration=None)
    with pytest.raises(bdguard_module.InvalidArgument, match="distinct names"):
        bdguard_module.scan(model, x, detectors=["mm-bd", "mm-bd"], calibration=None)
    # Images of 5 x 28 pixels for a 28 x 28 model.
    with pytest.raises(bdguard_module.Error, match="28"):
        bdguard_module.scan(model, x[:, :, :5], calibration=None)
