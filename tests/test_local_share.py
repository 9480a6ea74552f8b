"""The paper's locally shared convolutions (`--local-share`), built from Slice + Convolution +
Concat in the templates: the regions tile each convolution's output exactly; with every region
given the same filters the net computes what the ordinarily shared net computes (so the slicing
geometry is right); with their own filters the regions differ; OpenCV DNN runs the deploy file
as Caffe does; and `caffe train` trains it."""
from __future__ import annotations

import re
from dataclasses import replace

import cv2
import numpy as np
import pytest

from common.caffe_tools import import_caffe
from common.nets import by_name
from conftest import run_module
from model.config import settings_for
from model.generate import region_slices, render_net

F1 = by_name("F1")


@pytest.mark.parametrize("size,kernel,parts", [(39, 4, 2), (18, 3, 2), (8, 3, 3), (3, 2, 1), (10, 3, 3)])
def test_regions_tile_the_output(size, kernel, parts):
    runs = region_slices(size, kernel, parts)
    assert len(runs) == parts
    outputs = []
    for r in runs:
        n_out = r["stop"] - r["start"] - kernel + 1
        assert n_out >= 1
        outputs += list(range(r["start"], r["start"] + n_out))
        # what Slice keeps: between the cut points around the run
        cuts = [0, *r["points"], size]
        assert (cuts[r["keep"]], cuts[r["keep"] + 1]) == (r["start"], r["stop"])
    assert outputs == list(range(size - kernel + 1))     # every output once, in order
    sizes = [r["stop"] - r["start"] for r in runs]
    assert max(sizes) - min(sizes) <= 1                  # as equal as can be


def nets(tmp_path, act):
    """(shared deploy, local deploy) of F1 with activation `act`."""
    out = {}
    for local in (False, True):
        settings = replace(settings_for(1), act=act, local_share=local)
        folder = render_net(F1, settings, tmp_path / ("local" if local else "shared"), tmp_path / "hdf5")
        out[local] = folder
    return out[False] / "deploy.prototxt", out[True] / "deploy.prototxt"


@pytest.mark.caffe
@pytest.mark.parametrize("act", ["relu", "abstanh"])
def test_local_net_with_equal_regions_is_the_shared_net(tmp_path, act):
    caffe = import_caffe()
    caffe.set_random_seed(11)
    shared_file, local_file = nets(tmp_path, act)
    shared = caffe.Net(str(shared_file), caffe.TEST)
    local = caffe.Net(str(local_file), caffe.TEST)
    text = local_file.read_text()
    # the paper's S0 layout: 2x2, 2x2, 3x3 regions, conv4 shared
    for conv, regions in (("conv1", 4), ("conv2", 4), ("conv3", 9), ("conv4", 1)):
        names = [n for n in local.params if re.fullmatch(rf"{conv}(_\d\d)?", n)]
        assert len(names) == regions, (conv, names)
    assert "Silence" not in text        # deploy files carry no training-only layers

    def copy_shared(into):
        for name, params in into.params.items():
            source = shared.params[name.split("_")[0]]
            for p, s in zip(params, source):
                p.data[...] = s.data

    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 1, 39, 39)).astype(np.float32)

    def forward(net):
        net.blobs["data"].reshape(*x.shape)
        net.blobs["data"].data[...] = x
        return net.forward()["fc2"].copy()

    copy_shared(local)
    np.testing.assert_allclose(forward(local), forward(shared), rtol=1e-5, atol=1e-6)

    # Own filters per region: a different function, and OpenCV DNN computes it as Caffe does.
    for name, params in local.params.items():
        if re.fullmatch(r"conv\d_\d\d", name):
            params[0].data[...] += rng.normal(scale=0.05, size=params[0].data.shape)
    theirs = forward(local)
    assert np.abs(theirs - forward(shared)).max() > 1e-3
    weights = tmp_path / "local.caffemodel"
    local.save(str(weights))
    cv_net = cv2.dnn.readNetFromCaffe(str(local_file), str(weights))
    cv_net.setInput(x)
    np.testing.assert_allclose(cv_net.forward().reshape(len(x), -1), theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.caffe
def test_caffe_trains_the_local_net(tmp_path, level1_hdf5):
    log_dir = tmp_path / "log"
    run_module("model.train", "--nets", "F1", "--quick", "--iters", 60, "--local-share", "--act", "abstanh",
               "--model-root", tmp_path / "model", "--hdf5-root", level1_hdf5, "--log-dir", log_dir)
    log = (log_dir / "1_F1.log").read_text()
    losses = [float(v) for v in re.findall(r"Iteration \d+.*?, loss = (\S+)", log)]
    assert len(losses) >= 2 and all(np.isfinite(losses))
    assert (tmp_path / "model" / "1_F1" / "weights.caffemodel").is_file()
    train = (tmp_path / "model" / "1_F1" / "train.prototxt").read_text()
    assert 'type: "Silence"' in train and 'type: "AbsVal"' in train
