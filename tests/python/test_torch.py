"""A PyTorch model exported to ONNX in memory, loaded by bdguard: its predictions equal
torch's. Python's torch and bdguard share Debian's one LibTorch (1.13): both import
orders are checked in a fresh interpreter."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROUND_TRIP = """
import io, numpy as np
{first}
{second}
torch.manual_seed(0)
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
    torch.nn.Linear(4 * 13 * 13, 5)).eval()
buf = io.BytesIO()
torch.onnx.export(net, torch.zeros(1, 1, 28, 28), buf, input_names=["x"],
                  output_names=["logits"], dynamic_axes={{"x": {{0: "n"}}, "logits": {{0: "n"}}}})
model = bdguard.load(buf)
x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))
labels, probs = model.predict(x)
with torch.no_grad():
    want = torch.softmax(net(x), dim=1).numpy()
assert np.array_equal(labels, want.argmax(1)), (labels, want.argmax(1))
assert np.allclose(probs, want, atol=1e-5), np.abs(probs - want).max()
print("ok", model.format, model.input_shape, model.num_classes)
"""


@pytest.mark.parametrize("order", ["torch first", "bdguard first"])
def test_import_order_and_round_trip(order):
    lines = ["import torch", "import bdguard"]
    if order == "bdguard first":
        lines.reverse()
    code = ROUND_TRIP.format(first=lines[0], second=lines[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok onnx [1, 28, 28] 5")


def test_torch_model_evaluated_and_saved(bdguard_module, tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    buf = io.BytesIO()
    torch.onnx.export(net, torch.zeros(2, 3, 8, 8), buf, input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    model = bdguard_module.load(buf.getvalue())
    x = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = net(x).argmax(1).numpy()
    y = want.copy()
    y[:10] = (y[:10] + 1) % 4  # 10 of 40 wrong: 75 %
    got = model.evaluate(x, torch.from_numpy(y))
    assert got["clean_accuracy"] == pytest.approx(75.0)
    nhwc = x.permute(0, 2, 3, 1)  # a strided torch view, NHWC
    assert np.array_equal(model.predict(nhwc)[0], want)
    model.save(str(tmp_path / "net.onnx"))
    again = bdguard_module.load(str(tmp_path / "net.onnx"))
    assert np.array_equal(again.predict(x)[0], want)
