"""bdguard.detect, strip, defend, compare and prune: the CLI's JSON, from arrays."""

import os

import numpy as np
import pytest

from conftest import run_cli

NC = ["--labels", "0,3", "--nc-steps", "3", "--nc-batches-per-step", "2",
      "--nc-eval-images", "100"]
NC_KW = dict(labels=[0, 3], max_steps=3, batches_per_step=2, eval_images=100)


def same(got, want, path=""):
    """Equal documents, floats to 1e-9 relative (timings and settings aside)."""
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            if k in ("timings", "settings", "seconds", "screen_s", "refine_s"):
                continue
            same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


@pytest.fixture(scope="module")
def arrays(bdguard_module, badnet):
    model_path, data = badnet
    model = bdguard_module.load(model_path)
    read = {name: bdguard_module.read_data(os.path.join(data, name + ".h5"), model)
            for name in ("valid", "bd_valid", "test", "bd_test")}
    return model, read


def test_detect_equals_cli_detect(bdguard_module, badnet, arrays, tmp_path):
    model_path, data = badnet
    model, read = arrays
    want = run_cli("detect", "--model", model_path, "--clean", os.path.join(data, "valid.h5"),
                   "--out", str(tmp_path / "cli"), *NC)
    got = bdguard_module.detect(model, read["valid"][0], out=str(tmp_path / "py"), **NC_KW)
    same(got, want)
    assert set(got["settings"]) == set(want["settings"])
    assert (tmp_path / "py" / "detect.json").exists()


def test_detect_reports_progress_and_refuses_unknown_options(bdguard_module, arrays):
    model, read = arrays
    calls = []
    bdguard_module.detect(model, read["valid"][0][:64], labels=[3], max_steps=1,
                          batches_per_step=1, eval_images=10,
                          progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls and all(isinstance(s, str) for s, _, _ in calls)
    with pytest.raises(bdguard_module.InvalidArgument, match="no_such_option"):
        bdguard_module.detect(model, read["valid"][0][:64], no_such_option=1)


def test_progress_callback_errors_reach_the_caller(bdguard_module, arrays):
    model, read = arrays

    def fail(stage, done, total):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        bdguard_module.detect(model, read["valid"][0][:64], labels=[3], max_steps=1,
                              batches_per_step=1, eval_images=10, progress=fail)


def test_strip_equals_cli_strip_eval(bdguard_module, badnet, arrays):
    model_path, data = badnet
    model, read = arrays
    want = run_cli("strip", "eval", "--model", model_path,
                   "--clean", os.path.join(data, "valid.h5"),
                   "--test", os.path.join(data, "test.h5"),
                   "--poisoned-test", os.path.join(data, "bd_test.h5"), "--overlays", "4")
    got = bdguard_module.strip(model, read["valid"][0], read["test"][0], read["bd_test"][0],
                               overlays=4)
    same(got, want)


def test_defend_returns_the_model_and_the_cli_figures(bdguard_module, badnet, arrays, tmp_path):
    model_path, data = badnet
    model, read = arrays
    want = run_cli("defend", "finetune", "--model", model_path,
                   "--clean", os.path.join(data, "valid.h5"),
                   "--poisoned", os.path.join(data, "bd_valid.h5"), "--epochs", "1",
                   "--no-proxy", "--out", str(tmp_path / "cli.h5"))
    assert want.pop("proxy") is None  # the CLI's own measurement, not defend's figures
    x, y = read["valid"]
    defended, got = bdguard_module.defend(model, "finetune", x, y, poisoned=read["bd_valid"],
                                          epochs=1, out=str(tmp_path / "py.h5"))
    assert isinstance(defended, bdguard_module.Model)
    for k in ("output", "model"):
        want.pop(k), got.pop(k)
    same(got, want)
    assert got["sha256"] == want["sha256"]  # the same bytes
    assert defended.evaluate(x, y)["n_clean"] == len(y)


def test_defend_option_errors(bdguard_module, arrays):
    model, read = arrays
    x, y = read["valid"]
    with pytest.raises(bdguard_module.InvalidArgument, match="no such option"):
        bdguard_module.defend(model, "finetune", x, y, no_such_option=3)
    with pytest.raises(bdguard_module.InvalidArgument):
        bdguard_module.defend(model, "no-such-method", x, y)


def test_compare_has_the_cli_keys(bdguard_module, arrays):
    model, read = arrays
    s = slice(0, 200)
    pick = {k: (v[0][s], v[1][s]) for k, v in read.items()}
    got = bdguard_module.compare(model, pick["valid"], pick["bd_valid"], pick["test"],
                                 pick["bd_test"], methods="clp", nc=NC_KW)
    assert [r["method"] for r in got["rows"]] == ["clp"]
    assert got["proxy"]["n_holdout"] == 40 and 0 <= got["rows"][0]["proxy_asr"] <= 100
    assert got["n_test"] == 200 and got["target"] == 3
    assert "settings" in got


def test_prune_equals_cli_prune(bdguard_module, badnet, arrays, tmp_path):
    model_path, data = badnet
    model, read = arrays
    want = run_cli("prune", "--model", model_path, "--clean", os.path.join(data, "valid.h5"),
                   "--poisoned", os.path.join(data, "bd_valid.h5"), "--out",
                   str(tmp_path / "cli"))
    got = bdguard_module.prune(model, read["valid"], read["bd_valid"], out=str(tmp_path / "py"))
    assert [s["valid_accuracy"] for s in got["steps"]] == \
        [s["valid_accuracy"] for s in want["steps"]]
    assert set(got) == set(want)
