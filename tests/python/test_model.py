"""bdguard.load, Model.predict / evaluate / summary / save, arrays and errors."""

import io
import os
import threading

import numpy as np
import pytest

from conftest import cli_error, run_cli


@pytest.fixture(scope="module")
def loaded(bdguard_module, badnet):
    model_path, data = badnet
    model = bdguard_module.load(model_path)
    x, y = bdguard_module.read_data(os.path.join(data, "valid.h5"), model)
    return model, x[:300], y[:300]


def test_errors_are_one_hierarchy(bdguard_module):
    b = bdguard_module
    for e in (b.FormatError, b.ShapeMismatch, b.UnsupportedLayer, b.LimitExceeded, b.IoError,
              b.InvalidArgument):
        assert issubclass(e, b.Error)
    assert issubclass(b.Error, Exception)
    assert b.UnsupportedOp is b.UnsupportedLayer


def test_load_error_is_the_cli_message(bdguard_module, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(bdguard_module.FormatError) as e:
        bdguard_module.load(str(bad))
    assert str(e.value) == cli_error("inspect", "--model", str(bad))


def test_load_error_from_bytes_names_bytes(bdguard_module):
    with pytest.raises(bdguard_module.FormatError) as e:
        bdguard_module.load(b"not a model at all")
    assert "<bytes>" in str(e.value)
    assert "bdguard-model-" not in str(e.value)


def test_model_properties(loaded):
    model, _, _ = loaded
    assert model.input_shape == [1, 28, 28]
    assert model.num_classes == 10
    assert model.format == "keras"


def test_evaluate_equals_cli_eval(bdguard_module, badnet):
    model_path, data = badnet
    model = bdguard_module.load(model_path)
    x, y = bdguard_module.read_data(os.path.join(data, "valid.h5"), model)
    xp, yp = bdguard_module.read_data(os.path.join(data, "bd_valid.h5"), model)
    got = model.evaluate(x, y, xp, yp)
    want = run_cli("eval", "--model", model_path, "--clean", os.path.join(data, "valid.h5"),
                   "--poisoned", os.path.join(data, "bd_valid.h5"))
    assert got == want


def test_evaluate_without_poisoned_has_cli_keys(loaded):
    model, x, y = loaded
    got = model.evaluate(x, y)
    assert set(got) == {"clean_accuracy", "n_clean", "attack_success_rate", "n_poisoned"}
    assert got["n_clean"] == 300 and got["attack_success_rate"] is None


def test_poisoned_labels_may_be_the_target(loaded):
    model, x, y = loaded
    one = model.evaluate(x, y, x, 3)
    assert one["n_poisoned"] == 300
    labels, _ = model.predict(x)
    assert one["attack_success_rate"] == pytest.approx(100.0 * np.mean(labels == 3))


def test_predict_nchw_nhwc_and_views_agree(loaded):
    model, x, _ = loaded
    labels, probs = model.predict(x)
    assert labels.shape == (300,) and probs.shape == (300, 10)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert np.array_equal(model.predict(nhwc)[0], labels)
    assert np.array_equal(model.predict(x.transpose(0, 2, 3, 1))[0], labels)  # strided view
    assert np.array_equal(model.predict(x[:, 0])[0], labels)  # (N, H, W): one channel
    assert np.array_equal(model.predict(x[::2])[0], labels[::2])  # every other image
    assert np.array_equal(model.predict(np.asfortranarray(x))[0], labels)


def test_predict_uint8_equals_float(loaded):
    model, x, _ = loaded
    if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255):
        pytest.skip("the tiny data are not whole 0..255 pixels")
    labels, probs = model.predict(x)
    labels8, probs8 = model.predict(x.astype(np.uint8))
    assert np.array_equal(labels8, labels)
    assert np.allclose(probs8, probs, atol=1e-6)


def test_wrong_shape_is_shape_mismatch(bdguard_module, loaded):
    model, x, _ = loaded
    with pytest.raises(bdguard_module.ShapeMismatch) as e:
        model.predict(x[:, :, :20])
    assert str(e.value) == ("x: images: expected (N, 1, 28, 28) or (N, 28, 28, 1) for the "
                            "model's input, found (300, 1, 20, 28)")


def test_nan_pixels_are_refused(bdguard_module, loaded):
    model, x, _ = loaded
    bad = x[:4].copy()
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(bdguard_module.FormatError, match="finite pixel values"):
        model.predict(bad)


def test_labels_out_of_range_are_refused(bdguard_module, loaded):
    model, x, y = loaded
    bad = y.copy()
    bad[7] = 10
    with pytest.raises(bdguard_module.FormatError) as e:
        model.evaluate(x, bad)
    assert str(e.value) == "x: label[7]: expected a class in [0, 10), found 10"


def test_summary_equals_cli_inspect(bdguard_module, badnet):
    model_path, _ = badnet
    assert bdguard_module.load(model_path).summary() == run_cli("inspect", "--model", model_path)


def test_save_and_load_bytes_round_trip(bdguard_module, loaded, tmp_path):
    model, x, _ = loaded
    out = tmp_path / "copy.h5"
    model.save(str(out))
    again = bdguard_module.load(out)  # a PathLike
    assert np.array_equal(again.predict(x)[1], model.predict(x)[1])
    from_bytes = bdguard_module.load(io.BytesIO(out.read_bytes()))
    assert from_bytes.source == "<bytes>"
    assert np.array_equal(from_bytes.predict(x)[1], model.predict(x)[1])
    from_bytes.save(str(tmp_path / "from_bytes.h5"))  # a Keras copy of the bytes' file
    with pytest.raises(bdguard_module.InvalidArgument):
        model.save(str(tmp_path / "wrong.onnx"))


def test_gil_is_released_while_computing(loaded):
    model, x, _ = loaded
    big = np.repeat(x, 20, axis=0)
    ticks = []
    done = threading.Event()

    def work():
        model.predict(big)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks.append(1)
        done.wait(0.001)
    t.join()
    assert len(ticks) > 5
