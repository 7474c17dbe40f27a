"""bdguard from Python: backdoor detection and defenses on Keras and ONNX models.

    import bdguard
    model = bdguard.load("model.onnx")            # a path, bytes or an io.BytesIO
    labels, probs = model.predict(x)               # NumPy uint8/float32, NCHW or NHWC
    model.evaluate(x, y)                           # the dict of `bdguard eval --json`
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
    "set_threads", "strip",
]

# Shown as bdguard.Model, bdguard.FormatError, ... rather than bdguard._native.X.
for _name in ("Model", "Error", "FormatError", "InvalidArgument", "IoError", "LimitExceeded",
              "ShapeMismatch", "UnsupportedLayer"):
    globals()[_name].__module__ = "bdguard"
del _name
