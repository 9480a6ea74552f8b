"""The layers that scripts/caffe/04-cpu-training-speed.patch and
05-tiled-max-pooling.patch make faster still compute what Caffe's definitions say:
convolution (the fast im2col/col2im path without padding at unit stride, and the general path
with padding), in-place ReLU and 2x2 max pooling (whole windows, and the clipped
windows at an odd map's edge), forward and backward, against numpy written from the definitions.
Pooling is also given small integers, so that its windows hold ties: Caffe sends the gradient to
the first maximum in row-major order, and so must the patched loop. A second net takes the path
of patch 05: pooling over 2x2 windows that tile the map, in one pass."""
from __future__ import annotations

import numpy as np
import pytest

from common.caffe_tools import import_caffe

pytestmark = pytest.mark.caffe  # pycaffe

NET = """
name: "layers"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 9 dim: 8 } } }
layer { name: "ties" type: "Input" top: "ties" input_param { shape { dim: 2 dim: 3 dim: 7 dim: 9 } } }
layer { name: "pool_t" type: "Pooling" bottom: "ties" top: "pool_t" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer {
  name: "conv_a" type: "Convolution" bottom: "data" top: "conv_a"
  convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "constant" value: 0.1 } }
}
layer { name: "relu_a" type: "ReLU" bottom: "conv_a" top: "conv_a" }
layer { name: "pool_a" type: "Pooling" bottom: "conv_a" top: "pool_a" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer {
  name: "conv_b" type: "Convolution" bottom: "data" top: "conv_b"
  convolution_param { num_output: 5 kernel_size: 2 pad: 1 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "constant" value: -0.2 } }
}
"""


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """Caffe's convolution (cross-correlation), stride 1."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    oh, ow = x.shape[2] - k + 1, x.shape[3] - k + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for a in range(k):
        for c in range(k):
            out += np.einsum("mc,nchw->nmhw", w[:, :, a, c], x[:, :, a:a + oh, c:c + ow])
    return out + b[None, :, None, None]


def conv_backward(x, w, g, pad):
    """Gradients of conv() for the top gradient g: (dx, dw, db)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    oh, ow = g.shape[2:]
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for a in range(k):
        for c in range(k):
            dw[:, :, a, c] = np.einsum("nmhw,nchw->mc", g, xp[:, :, a:a + oh, c:c + ow])
            dxp[:, :, a:a + oh, c:c + ow] += np.einsum("mc,nmhw->nchw", w[:, :, a, c], g)
    dx = dxp[:, :, pad:xp.shape[2] - pad, pad:xp.shape[3] - pad]
    return dx, dw, g.sum(axis=(0, 2, 3))


def max_pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2, stride 2, Caffe's rounding up (the last window clipped on an odd side): the pooled
    maps and, per output, the flat index into its input map of the first maximum."""
    n, ch, h, w = x.shape
    ph, pw = -(-(h - 2) // 2) + 1, -(-(w - 2) // 2) + 1
    out = np.zeros((n, ch, ph, pw))
    arg = np.zeros((n, ch, ph, pw), dtype=int)
    for i in range(ph):
        for j in range(pw):
            rows, cols = range(2 * i, min(2 * i + 2, h)), range(2 * j, min(2 * j + 2, w))
            flat = [r * w + c for r in rows for c in cols]
            window = x.reshape(n, ch, h * w)[:, :, flat]
            first = window.argmax(axis=2)       # the first of equal maxima, as Caffe's strict >
            out[:, :, i, j] = np.take_along_axis(window, first[..., None], axis=2)[..., 0]
            arg[:, :, i, j] = np.asarray(flat)[first]
    return out, arg


def max_pool_backward(x: np.ndarray, arg: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Gradient of max_pool() at x for the pooled gradient g: each g on its window's first maximum."""
    n, ch = x.shape[:2]
    dx = np.zeros_like(x).reshape(n, ch, -1)
    np.put_along_axis(dx, arg.reshape(n, ch, -1), g.reshape(n, ch, -1), axis=2)
    return dx.reshape(x.shape)


def whole_windows_with_ties(x: np.ndarray) -> int:
    """How many of x's whole 2x2 windows (a clipped edge window left out) hold equal values."""
    n, ch, h, w = x.shape
    whole = x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, ch, h // 2, 2, w // 2, 2)
    windows = whole.transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4)
    return sum(len(set(row)) < 4 for row in windows.tolist())


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    caffe = import_caffe()
    path = tmp_path_factory.mktemp("layers") / "layers.prototxt"
    path.write_text(NET)
    caffe.set_random_seed(7)
    return caffe.Net(str(path), caffe.TRAIN)


def test_patched_layers_match_their_definitions(net):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 9, 8))
    ties = rng.integers(-2, 3, size=(2, 3, 7, 9)).astype(np.float64)
    net.blobs["data"].data[...] = x
    net.blobs["ties"].data[...] = ties
    net.forward()
    wa, ba = (net.params["conv_a"][i].data.astype(np.float64) for i in (0, 1))
    wb, bb = (net.params["conv_b"][i].data.astype(np.float64) for i in (0, 1))

    relu_a = np.maximum(conv(x, wa, ba, pad=0), 0)
    assert (relu_a == 0).mean() > 0.2, "too few zeros after ReLU for the pooling ties to be tested"
    pooled, arg = max_pool(relu_a)
    assert pooled.shape == (2, 4, 4, 3)          # rows 7 -> 4 windows, the last one clipped
    np.testing.assert_allclose(net.blobs["conv_a"].data, relu_a, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.blobs["pool_a"].data, pooled, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.blobs["conv_b"].data, conv(x, wb, bb, pad=1), rtol=1e-5, atol=1e-5)

    g_pool = rng.normal(size=pooled.shape)
    g_b = rng.normal(size=net.blobs["conv_b"].data.shape)
    for name in ("conv_a", "conv_b"):
        for p in net.params[name]:
            p.diff[...] = 0
    pooled_t, arg_t = max_pool(ties)
    np.testing.assert_array_equal(net.blobs["pool_t"].data, pooled_t)
    g_t = rng.normal(size=pooled_t.shape)
    net.backward(pool_a=g_pool, conv_b=g_b, pool_t=g_t)

    # Ties: the gradient lands on the first maximum of each window (edge windows clipped).
    assert whole_windows_with_ties(ties) > 20
    np.testing.assert_allclose(net.blobs["ties"].diff, max_pool_backward(ties, arg_t, g_t), rtol=1e-6, atol=1e-6)

    # Max pooling sends each gradient to its window's first maximum; ReLU stops it where the
    # activation is 0.
    g_conv_a = max_pool_backward(relu_a, arg, g_pool) * (relu_a > 0)
    dx_a, dwa, dba = conv_backward(x, wa, g_conv_a, pad=0)
    dx_b, dwb, dbb = conv_backward(x, wb, g_b, pad=1)
    np.testing.assert_allclose(net.params["conv_a"][0].diff, dwa, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.params["conv_a"][1].diff, dba, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.params["conv_b"][0].diff, dwb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.params["conv_b"][1].diff, dbb, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.blobs["data"].diff, dx_a + dx_b, rtol=1e-4, atol=1e-4)
    assert np.abs(dx_a).max() > 0.1 and np.abs(dx_b).max() > 0.1


# Patch 05: the convolution's 8x8 map and the 8x6 ties pool in whole 2x2 windows that tile the map.
TILED_NET = """
name: "tiled"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 5 dim: 3 dim: 10 dim: 10 } } }
layer { name: "ties" type: "Input" top: "ties" input_param { shape { dim: 5 dim: 2 dim: 8 dim: 6 } } }
layer { name: "pool_t" type: "Pooling" bottom: "ties" top: "pool_t" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer {
  name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "constant" value: 0.1 } }
}
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
"""


def test_tiled_pooling_matches_its_definition(tmp_path):
    caffe = import_caffe()
    path = tmp_path / "tiled.prototxt"
    path.write_text(TILED_NET)
    caffe.set_random_seed(11)
    net = caffe.Net(str(path), caffe.TRAIN)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(5, 3, 10, 10))
    ties = rng.integers(-2, 3, size=(5, 2, 8, 6)).astype(np.float64)
    net.blobs["data"].data[...] = x
    net.blobs["ties"].data[...] = ties
    net.forward()
    w, b = (net.params["conv"][i].data.astype(np.float64) for i in (0, 1))

    relu = np.maximum(conv(x, w, b, pad=0), 0)
    pooled, arg = max_pool(relu)
    assert pooled.shape == (5, 6, 4, 4)
    np.testing.assert_allclose(net.blobs["conv"].data, relu, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.blobs["pool"].data, pooled, rtol=1e-5, atol=1e-5)
    pooled_t, arg_t = max_pool(ties)
    np.testing.assert_array_equal(net.blobs["pool_t"].data, pooled_t)
    assert whole_windows_with_ties(ties) > 20

    net.params["conv"][0].diff[...] = 0
    net.params["conv"][1].diff[...] = 0
    g_pool, g_t = rng.normal(size=pooled.shape), rng.normal(size=pooled_t.shape)
    net.backward(pool=g_pool, pool_t=g_t)

    np.testing.assert_allclose(net.blobs["ties"].diff, max_pool_backward(ties, arg_t, g_t), rtol=1e-6, atol=1e-6)
    dx, dw, db = conv_backward(x, w, max_pool_backward(relu, arg, g_pool) * (relu > 0), pad=0)
    np.testing.assert_allclose(net.params["conv"][0].diff, dw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.params["conv"][1].diff, db, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.blobs["data"].diff, dx, rtol=1e-4, atol=1e-4)
    assert np.abs(dx).max() > 0.1
