"""The training losses (`--loss`): the layers the templates build for "distance" and "l1" compute,
in the real Caffe, the mean point distance and the mean absolute error of the net's output
against its targets, and send back their gradients; `caffe train` trains with them; and the
deploy file, which OpenCV runs, is the same whatever the loss."""
from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from common.caffe_tools import import_caffe
from common.nets import by_name
from conftest import run_module, training_loss
from model.config import LOSSES, settings_for
from model.generate import render_net

pytestmark = pytest.mark.caffe

F1 = by_name("F1")


@pytest.mark.parametrize("loss", LOSSES)
def test_loss_layers_compute_their_definition(tmp_path, level1_hdf5, loss):
    caffe = import_caffe()
    caffe.set_random_seed(3)
    folder = render_net(F1, replace(settings_for(1), loss=loss, batch_size=16), tmp_path, level1_hdf5)
    net = caffe.Net(str(folder / "train.prototxt"), caffe.TRAIN)
    net.forward()
    out, target = net.blobs["fc2"].data.copy(), net.blobs["landmark"].data.copy()
    assert out.shape == target.shape == (16, 10)
    want_loss, want_grad = training_loss(loss, out, target)
    assert float(net.blobs["loss"].data) == pytest.approx(want_loss, rel=1e-4)
    net.backward()
    np.testing.assert_allclose(net.blobs["fc2"].diff, want_grad, rtol=1e-3, atol=1e-7)
    # the deploy net, which inference reads, carries no loss: the same for every loss
    deploy = (folder / "deploy.prototxt").read_text()
    assert "loss" not in deploy and "landmark" not in deploy


def test_losses_give_the_same_deploy_net(tmp_path):
    deploys = {render_net(F1, replace(settings_for(1), loss=loss), tmp_path / loss, tmp_path / "hdf5")
               .joinpath("deploy.prototxt").read_text() for loss in LOSSES}
    assert len(deploys) == 1


def test_unknown_loss_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown loss 'huber'"):
        render_net(F1, replace(settings_for(1), loss="huber"), tmp_path, tmp_path / "hdf5")


def test_caffe_trains_with_the_distance_loss(tmp_path, level1_hdf5):
    log_dir = tmp_path / "log"
    run_module("model.train", "--nets", "F1", "--quick", "--iters", 100, "--loss", "distance",
               "--model-root", tmp_path / "model", "--hdf5-root", level1_hdf5, "--log-dir", log_dir)
    log = (log_dir / "1_F1.log").read_text()
    losses = [float(v) for v in re.findall(r"Iteration \d+.*?, loss = (\S+)", log)]
    tests = [float(v) for v in re.findall(r"Test net output #0: loss = (\S+)", log)]
    assert len(losses) >= 2 and all(np.isfinite(losses)) and tests
    # a mean distance in box-relative units: positive, and below the box's diagonal
    assert all(0 < v < 1.5 for v in losses + tests)
    assert losses[-1] < losses[0]
    assert (tmp_path / "model" / "1_F1" / "weights.caffemodel").is_file()
