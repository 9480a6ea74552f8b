"""Caffe and OpenCV run the same net: the training loss (model/config.py `loss`) `caffe test`
reports on a test HDF5 file equals that loss computed from OpenCV-DNN outputs (deploy.prototxt
+ the same weights), as used by common.cascade."""
from __future__ import annotations

import re
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from common import hdf5data
from common.caffe_tools import caffe_command
from common.cascade import Cascade
from common.nets import by_name
from common.paths import ROOT
from conftest import training_loss
from model.config import settings_for
from model.generate import render_net

pytestmark = pytest.mark.caffe

BATCH, K = 25, 4   # test file of 100 faces = BATCH * K: Caffe never wraps around


def caffe_test_loss(train_prototxt, weights, iterations: int) -> tuple[float, list[float]]:
    """(final mean loss, per-batch losses) from `caffe test`'s own output."""
    proc = subprocess.run([caffe_command(), "test", f"--model={train_prototxt}", f"--weights={weights}",
                           f"--iterations={iterations}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    batches = [float(v) for v in re.findall(r"Batch \d+, loss = (\S+)", text)]
    final = re.findall(r"\] loss = (\S+) \(\* 1 = ", text)
    assert final, text[-3000:]
    return float(final[-1]), batches


@pytest.mark.parametrize("name", ["F1", "EN1", "NM1"])
def test_caffe_and_opencv_agree_on_loss(tmp_path, trained_level1, name):
    spec = by_name(name)
    test_h5 = trained_level1.hdf5_root / spec.key / "test.h5"
    x, y = hdf5data.read(test_h5)
    assert len(x) == BATCH * K
    # The trained net's prototxt, rendered again with a test batch that divides the file.
    folder = render_net(spec, replace(settings_for(1), test_batch_size=BATCH), tmp_path, trained_level1.hdf5_root)
    weights = trained_level1.model_root / spec.key / "weights.caffemodel"
    caffe_loss, caffe_batches = caffe_test_loss(folder / "train.prototxt", weights, K)
    assert len(caffe_batches) == K

    # OpenCV, through the cascade's own forward pass, on the same deploy prototxt + weights
    cascade = Cascade(trained_level1.model_root, levels=1)
    out = cascade.forward(spec, x[:, 0])
    assert out.shape == (len(x), spec.n_outputs)
    kind = settings_for(1).loss
    per_batch = [training_loss(kind, out[i:i + BATCH], y[i:i + BATCH])[0] for i in range(0, len(x), BATCH)]
    ours = float(np.mean(per_batch))
    print(f"{name}: caffe test loss {caffe_loss:.6g}, OpenCV {ours:.6g}")
    assert ours == pytest.approx(caffe_loss, rel=1e-4)
    np.testing.assert_allclose(per_batch, caffe_batches, rtol=1e-4)
    # the same loss also matches the last test loss Caffe logged while training (batch 100)
    log = (trained_level1.log_dir / f"{spec.key}.log").read_text()
    logged = float(re.findall(r"Test net output #0: loss = (\S+)", log)[-1])
    assert ours == pytest.approx(logged, rel=1e-4)
