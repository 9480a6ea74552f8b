"""pycaffe (built by scripts/setup.sh) next to the project's OpenCV inference: the released nets
give the same outputs through caffe.Net and OpenCV DNN, caffe.draw draws them, and net surgery
merges nets into one that OpenCV runs with each net's own results."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from common.caffe_tools import import_caffe
from common.cascade import Cascade
from common.netfiles import deploy_files
from common.netinputs import crop_box, net_input
from common.nets import NETS, by_name
from common.netsurgery import merge_weights, prefix_map, side_by_side
from common.paths import RELEASED_MODEL
from conftest import run_module

pytestmark = pytest.mark.caffe

FACES = 20


@pytest.fixture(scope="module")
def inputs(test_faces) -> dict[str, np.ndarray]:
    """Real inputs (N, H, W) of every net: crops of the sample's test faces, as the cascade makes
    them (patch nets: centred on the true point)."""
    faces = test_faces[:FACES]
    grays = [f.load_gray() for f in faces]
    out = {}
    for spec in NETS:
        boxes = [crop_box(spec, f.box, None if spec.level == 1 else f.points[spec.point_indices[0]])
                 for f in faces]
        out[spec.key] = np.stack([net_input(g, b, spec) for g, b in zip(grays, boxes)]).astype(np.float32)
    return out


@pytest.fixture(scope="module")
def cascade() -> Cascade:
    return Cascade(RELEASED_MODEL)


def caffe_forward(caffe, deploy, weights, x: np.ndarray) -> np.ndarray:
    net = caffe.Net(str(deploy), str(weights), caffe.TEST)
    net.blobs["data"].reshape(len(x), 1, *x.shape[1:])
    net.blobs["data"].data[...] = x[:, None]
    out = net.forward()[net.outputs[0]]
    return out.reshape(len(x), -1).copy()


def test_released_nets_agree_through_pycaffe_and_opencv(inputs, cascade):
    caffe = import_caffe()
    worst = 0.0
    for spec in NETS:
        x = inputs[spec.key]
        ours = caffe_forward(caffe, *deploy_files(spec, RELEASED_MODEL), x)
        theirs = cascade.forward(spec, x)
        assert ours.shape == theirs.shape == (FACES, spec.n_outputs)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5, err_msg=spec.key)
        assert np.ptp(ours, axis=0).min() > 1e-3, f"{spec.key}: outputs do not vary with the face"
        worst = max(worst, float(np.abs(ours - theirs).max()))
    print(f"largest |caffe.Net - OpenCV| over {len(NETS)} nets x {FACES} faces: {worst:.2e}")


def test_draw_one_diagram_per_architecture(tmp_path):
    run_module("model.draw", "--model", RELEASED_MODEL, "--out", tmp_path, "--format", "svg")
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == ["S0.svg", "S1.svg", "S2.svg"]
    patch_net = (tmp_path / "S2.svg").read_text()
    for text in ("conv1", "pool1", "conv2", "pool2", "fc1", "fc2", "(Convolution)", "kernel size: 4"):
        assert text in patch_net, text
    index = (tmp_path / "README.md").read_text()
    assert all(index.count(spec.key) == 1 for spec in NETS)
    assert "- [S1.svg](S1.svg): 1_EN1, 1_NM1" in index


def test_draw_each_net_as_png(tmp_path):
    run_module("model.draw", "--model", RELEASED_MODEL, "--out", tmp_path, "--each")
    pngs = sorted(tmp_path.glob("*.png"))
    assert [p.stem for p in pngs] == sorted(spec.key for spec in NETS)
    image = cv2.imread(str(tmp_path / "1_F1.png"))
    assert image is not None and image.shape[1] > 400 and image.std() > 10


def test_merged_net_gives_each_nets_outputs(tmp_path, inputs, cascade):
    """Two level-2 nets side by side in one deploy net, weights copied by pycaffe: OpenCV runs the
    merged net once and gets what each net gives alone."""
    a, b = by_name("LE21"), by_name("LE22")
    (deploy_a, weights_a), (deploy_b, weights_b) = deploy_files(a, RELEASED_MODEL), deploy_files(b, RELEASED_MODEL)
    merged, weights = tmp_path / "merged.prototxt", tmp_path / "merged.caffemodel"
    merged.write_text(side_by_side({"LE21_": deploy_a, "LE22_": deploy_b}))
    merge_weights(merged, [(deploy_a, weights_a, prefix_map(deploy_a, "LE21_")),
                           (deploy_b, weights_b, prefix_map(deploy_b, "LE22_"))], weights)

    net = cv2.dnn.readNetFromCaffe(str(merged), str(weights))
    net.setInput(inputs[a.key][:, None], "LE21_data")
    net.setInput(inputs[b.key][:, None], "LE22_data")
    outs = net.forward(["LE21_fc2", "LE22_fc2"])
    for spec, out in zip((a, b), outs):
        np.testing.assert_allclose(out.reshape(FACES, -1), cascade.forward(spec, inputs[spec.key]),
                                   rtol=0, atol=1e-6, err_msg=spec.key)


def test_merge_weights_names_a_layer_left_without_source(tmp_path):
    deploy_a, weights_a = deploy_files(by_name("LE21"), RELEASED_MODEL)
    deploy_b, _ = deploy_files(by_name("LE22"), RELEASED_MODEL)
    merged = tmp_path / "merged.prototxt"
    merged.write_text(side_by_side({"A_": deploy_a, "B_": deploy_b}))
    with pytest.raises(ValueError, match="no source for B_conv1, B_conv2, B_fc1, B_fc2"):
        merge_weights(merged, [(deploy_a, weights_a, prefix_map(deploy_a, "A_"))], tmp_path / "m.caffemodel")
    with pytest.raises(ValueError, match="filled twice"):
        merge_weights(merged, [(deploy_a, weights_a, prefix_map(deploy_a, "A_"))] * 2, tmp_path / "m.caffemodel")
