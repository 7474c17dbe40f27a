"""bdguard from Python: backdoor detection and defenses on Keras and ONNX models.

    import bdguard
    model = bdguard.load("model.onnx")            # a path, bytes or an io.BytesIO
    labels, probs = model.predict(x)               # NumPy uint8/float32, NCHW or NHWC
    model.evaluate(x, y)                           # the dict of `bdguard eval --json`
    bdguard.scan(model, x)                         # the verdict: `bdguard scan --json`
    bdguard.detect(model, x, max_steps=50)         # Neural Cleanse: `bdguard detect --json`
    defended, figures = bdguard.defend(model, "fine-pruning", x, y)

Every result is a plain dict with the keys of the command line's JSON; every error is a
bdguard.Error (FormatError, ShapeMismatch, UnsupportedLayer, LimitExceeded, IoError,
InvalidArgument) with the command line's one-line message. Torch tensors are taken
through NumPy. See docs/python.md.
"""

from ._native import (  # noqa: F401
    Error,
    FormatError,
    InvalidArgument,
    IoError,
    LimitExceeded,
    Model,
    ShapeMismatch,
    UnsupportedLayer,
    UnsupportedOp,
    _scan,
    compare,
    defend,
    defense_defaults,
    defense_methods,
    detect,
    load,
    prune,
    read_data,
    set_threads,
    strip,
)

__all__ = [
    "Error", "FormatError", "InvalidArgument", "IoError", "LimitExceeded", "Model",
    "ShapeMismatch", "UnsupportedLayer", "UnsupportedOp", "compare", "defend",
    "defense_defaults", "defense_methods", "detect", "load", "prune", "read_data",
    "scan", "set_threads", "strip",
]

# Shown as bdguard.Model, bdguard.FormatError, ... rather than bdguard._native.X.
for _name in ("Model", "Error", "FormatError", "InvalidArgument", "IoError", "LimitExceeded",
              "ShapeMismatch", "UnsupportedLayer"):
    globals()[_name].__module__ = "bdguard"
del _name


_CALIBRATIONS = ("scan-calibration.json", "scan-calibration-no-data.json")


def _default_calibration(with_data, detectors):
    """The shipped calibration fitted for the detectors that run, as `bdguard scan` picks it
    (docs/commands/scan.md), or None: the uncalibrated rule."""
    import json
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for name in (_CALIBRATIONS if with_data else _CALIBRATIONS[1:]):
        path = os.path.join(here, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            fitted = json.load(f).get("detectors", [])
        if not with_data and any(d in ("nc", "k-arm") for d in fitted):
            continue
        if detectors == "auto" or sorted(detectors) == sorted(fitted):
            return path
    return None


def scan(model, x=None, *, calibration="default", detectors="auto", **options):
    """`bdguard scan --json`: is `model` backdoored? x: clean images (None: the data-free
    detectors only). calibration: "default" (the one shipped for the detectors that run),
    a file, or None (the uncalibrated rule). Options: threshold, seed, pixel_range,
    mm_starts, mm_steps, mm_lr, k_arm_steps, k_arm_batches_per_step, k_arm_arms,
    k_arm_min_arms, k_arm_min_steps, nc (a dict of Neural Cleanse's options), out, force,
    progress."""
    chosen = isinstance(calibration, str) and calibration == "default"
    if chosen:
        calibration = _default_calibration(x is not None, detectors)
    result = _scan(model, x, calibration=calibration, detectors=detectors, **options)
    result["calibration"]["default"] = chosen and calibration is not None
    return result
