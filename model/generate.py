"""Render the Caffe prototxt of each net from the Jinja2 templates in model/templates/.

    python -m model.generate                 # all 23 nets
    python -m model.generate --nets F1 EN1   # some nets; solver flags override model/config.py

writes model/<level>_<name>/{train,solver,deploy}.prototxt. Paths inside are relative to the
project root, so `.venv/bin/caffe train --solver=model/1_F1/solver.prototxt` works from there.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import jinja2

from common import nets as nettable
from common.console import log_to_console
from common.netfiles import DEPLOY, SNAPSHOTS, SOLVER, TRAIN_NET, hdf5_dir, net_dir, resolve_model
from common.nets import CascadeNet
from common.paths import HDF5_DIR, MODEL_DIR, rel
from model.config import LOSSES, SolverSettings, add_arguments, settings_for

TEMPLATES = Path(__file__).resolve().parent / "templates"
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                          lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def region_slices(size: int, kernel: int, parts: int) -> list[dict]:
    """Locally shared convolution along one axis of `size` inputs: the convolution's outputs
    (size - kernel + 1) split into `parts` runs as equal as can be, each computed by its own
    filters from the inputs it sees, [start, stop) with stop = its last output + kernel. Per
    run, how Caffe's Slice layer cuts that range out of the axis: `points` (its slice_point
    list, empty when the run takes the whole axis) and `keep`, the index of the top to use."""
    outputs = size - kernel + 1
    if not 1 <= parts <= outputs:
        raise ValueError(f"cannot split {outputs} outputs into {parts} regions")
    bounds = [round(i * outputs / parts) for i in range(parts + 1)]
    runs = []
    for first, last in zip(bounds, bounds[1:]):
        start, stop = first, last - 1 + kernel
        points = [p for p in (start, stop) if 0 < p < size]
        runs.append(dict(start=start, stop=stop, points=points, keep=1 if start > 0 else 0))
    return runs


_env.globals["region_slices"] = region_slices


def _test_count(hdf5: Path) -> int | None:
    meta = hdf5 / "meta.json"
    if meta.is_file():
        return json.loads(meta.read_text())["test"]
    return None


def _tidy(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines()]
    out: list[str] = []
    for ln in lines:
        if ln or (out and out[-1]):
            out.append(ln)
    return "\n".join(out).strip() + "\n"


def render_net(spec: CascadeNet, settings: SolverSettings, model_root: Path = MODEL_DIR,
               hdf5_root: Path = HDF5_DIR) -> Path:
    """Write the three prototxt files of one net; returns its folder."""
    if settings.loss not in LOSSES:
        raise ValueError(f"unknown loss {settings.loss!r}: one of {', '.join(LOSSES)}")
    out = net_dir(spec, model_root)
    (out / SNAPSHOTS).mkdir(parents=True, exist_ok=True)
    hdf5 = hdf5_dir(spec, hdf5_root)
    n_test = _test_count(hdf5)
    test_iter = math.ceil(n_test / settings.test_batch_size) if n_test else 10
    ctx = dict(net=spec, template=spec.template, act=settings.act, local=settings.local_share,
               loss=settings.loss,
               batch_size=settings.batch_size,
               test_batch_size=settings.test_batch_size,
               train_source=rel(hdf5 / "train.txt"), test_source=rel(hdf5 / "test.txt"))
    layers = _env.get_template(f"{spec.template}.prototxt.j2")
    (out / TRAIN_NET).write_text(_tidy(layers.render(deploy=False, **ctx)))
    (out / DEPLOY).write_text(_tidy(layers.render(deploy=True, **ctx)))
    solver = _env.get_template("solver.prototxt.j2").render(
        net=spec, solver=settings, train_net=rel(out / TRAIN_NET), test_iter=test_iter,
        test_interval=min(settings.test_interval, settings.max_iter),
        snapshot_prefix=rel(out / SNAPSHOTS / spec.key))
    (out / SOLVER).write_text(_tidy(solver))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", help="net names (F1, LE21, ...) or keys (1_F1); default all")
    p.add_argument("--level", type=int, choices=nettable.LEVELS, help="only the nets of this level")
    p.add_argument("--model-root", type=Path, help="where the net folders go (default model/)")
    p.add_argument("--hdf5-root", type=Path, default=HDF5_DIR, help="where the training data is (default dataset/hdf5/)")
    add_arguments(p)
    args = p.parse_args(argv)
    log_to_console()
    try:
        specs = [nettable.by_name(n) for n in args.nets] if args.nets else list(nettable.NETS)
    except KeyError as exc:
        p.error(str(exc.args[0]))
    if args.level:
        specs = [s for s in specs if s.level == args.level]
    for spec in specs:
        out = render_net(spec, settings_for(spec.level, args), resolve_model(args.model_root, trained_here=True),
                         args.hdf5_root)
        print(f"wrote {rel(out)}/{{train,solver,deploy}}.prototxt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
