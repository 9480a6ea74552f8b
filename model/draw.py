"""Diagrams of the nets, drawn by Caffe's own caffe.draw (pycaffe + Graphviz) from deploy.prototxt.

    python -m model.draw                          # released model -> result/nets/
    python -m model.draw --model model --each     # one diagram per net, not per architecture
    python -m model.draw --format svg --out DIR

Nets whose layers are the same (the 20 patch nets of levels 2 and 3 are one architecture) share
one diagram, named after their shape in common/nets.py; DIR/README.md says which nets each shows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.caffe_tools import CaffeMissing, import_caffe
from common.netfiles import DEPLOY, net_dir, resolve_model
from common.nets import NETS
from common.paths import RESULT_DIR, rel


def read_net(caffe, prototxt: Path):
    from google.protobuf import text_format
    net = caffe.proto.caffe_pb2.NetParameter()
    text_format.Merge(Path(prototxt).read_text(), net)
    return net


def layers_only(net) -> bytes:
    """The net without its name: two nets with equal bytes have the same architecture."""
    copy = type(net)()
    copy.CopyFrom(net)
    copy.ClearField("name")
    return copy.SerializeToString(deterministic=True)


def draw_all(model_root: Path, out: Path, fmt: str = "png", each: bool = False,
             rankdir: str = "LR") -> list[Path]:
    """Draw the nets found in `model_root`; returns the diagram files written."""
    caffe = import_caffe()
    import caffe.draw
    groups: dict[bytes, list] = {}   # architecture -> [(spec, net)], in table order
    for spec in NETS:
        prototxt = net_dir(spec, model_root) / DEPLOY
        if prototxt.is_file():
            net = read_net(caffe, prototxt)
            groups.setdefault(spec.key.encode() if each else layers_only(net), []).append((spec, net))
    if not groups:
        raise FileNotFoundError(f"no <level>_<name>/{DEPLOY} in {model_root}")
    out.mkdir(parents=True, exist_ok=True)
    written, index = [], ["# Net diagrams", "",
                          f"Drawn by `python -m model.draw` with Caffe's `caffe.draw` from "
                          f"`{rel(model_root)}/<net>/{DEPLOY}`.", ""]
    for members in groups.values():
        spec, net = members[0]
        name = spec.key if each else spec.template
        path = out / f"{name}.{fmt}"
        net.name = " ".join(s.name for s, _ in members)   # the graph's title
        caffe.draw.draw_net_to_file(net, str(path), rankdir)
        written.append(path)
        index.append(f"- [{path.name}]({path.name}): {', '.join(s.key for s, _ in members)}")
        print(f"{rel(path)}: {len(members)} net(s)")
    (out / "README.md").write_text("\n".join(index) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model",
                   help="model folder (default: the one predict uses, docs/training.md#model-folders)")
    p.add_argument("--out", type=Path, default=RESULT_DIR / "nets", help="output folder (default result/nets/)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help="diagram format (default png)")
    p.add_argument("--each", action="store_true", help="one diagram per net, even where nets are alike")
    p.add_argument("--rankdir", default="LR", choices=["LR", "TB", "BT", "RL"], help="layout direction (default LR)")
    args = p.parse_args(argv)
    try:
        draw_all(resolve_model(args.model), args.out, args.format, args.each, args.rankdir)
    except (CaffeMissing, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
