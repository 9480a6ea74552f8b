"""Net surgery with pycaffe: several trained nets put side by side in one deploy net, and their
learned parameters copied into it, so that one forward pass runs them all.

    text = side_by_side({"LE21_": deploy_a, "LE22_": deploy_b})    # a merged deploy.prototxt
    merge_weights(merged_prototxt, [(deploy_a, weights_a, {"conv1": "LE21_conv1", ...}), ...], out)

side_by_side() renames every layer and blob of each net with its prefix (each keeps its own
input); merge_weights() works for any merged net, given which layer of which net goes where.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

from common.caffe_tools import import_caffe


def side_by_side(deploys: Mapping[str, Path]) -> str:
    """A deploy net (prototxt text) holding each net of {prefix: deploy.prototxt} with its layer
    and blob names prefixed. Layer names map back with prefix_map()."""
    from google.protobuf import text_format
    caffe_pb2 = import_caffe().proto.caffe_pb2
    merged = caffe_pb2.NetParameter(name="+".join(p.rstrip("_") for p in deploys))
    for prefix, path in deploys.items():
        net = caffe_pb2.NetParameter()
        text_format.Merge(Path(path).read_text(), net)
        if net.input or not net.layer:
            raise ValueError(f"{path}: expected a net of layers with an Input layer (no legacy 'input:' fields)")
        for layer in net.layer:
            renamed = merged.layer.add()
            renamed.CopyFrom(layer)
            renamed.name = prefix + layer.name
            renamed.ClearField("bottom")
            renamed.ClearField("top")
            renamed.bottom.extend(prefix + b for b in layer.bottom)
            renamed.top.extend(prefix + t for t in layer.top)
    return text_format.MessageToString(merged)


def prefix_map(deploy: Path, prefix: str) -> dict[str, str]:
    """{layer: prefix + layer} for the layers of `deploy` that have learned parameters."""
    caffe = import_caffe()
    net = caffe.Net(str(deploy), caffe.TEST)
    return {name: prefix + name for name in net.params}


def merge_weights(merged_prototxt: Path, sources: Iterable[tuple[Path, Path, Mapping[str, str]]],
                  out: Path) -> None:
    """Copy learned parameters into the net of `merged_prototxt` and save them to `out`
    (.caffemodel). `sources`: (deploy.prototxt, weights.caffemodel, {source layer: merged layer}).
    Every parameter blob of the merged net must be filled exactly once, with matching shapes;
    anything else is a ValueError naming the layer."""
    caffe = import_caffe()
    merged = caffe.Net(str(merged_prototxt), caffe.TEST)
    filled: dict[str, str] = {}
    for deploy, weights, mapping in sources:
        net = caffe.Net(str(deploy), str(weights), caffe.TEST)
        for src, dst in mapping.items():
            if src not in net.params:
                raise ValueError(f"{deploy} has no layer {src!r} with parameters")
            if dst not in merged.params:
                raise ValueError(f"{merged_prototxt} has no layer {dst!r} with parameters")
            if dst in filled:
                raise ValueError(f"{dst!r} is filled twice ({filled[dst]} and {weights}:{src})")
            a, b = net.params[src], merged.params[dst]
            shapes = [x.data.shape for x in a], [x.data.shape for x in b]
            if shapes[0] != shapes[1]:
                raise ValueError(f"{weights}:{src} has blobs {shapes[0]}, {dst!r} needs {shapes[1]}")
            for x, y in zip(a, b):
                y.data[...] = x.data
            filled[dst] = f"{weights}:{src}"
    unfilled = sorted(set(merged.params) - set(filled))
    if unfilled:
        raise ValueError(f"no source for {', '.join(unfilled)} of {merged_prototxt}")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    merged.save(str(out))
