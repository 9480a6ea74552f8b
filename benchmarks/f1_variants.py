"""F1 alone under today's recipe at one fixed budget, four ways: ReLU or the paper's abs(tanh),
convolution weights shared over the whole map or the paper's locally shared regions
(`--local-share`); or, named with --variants, ReLU trained on another loss (relu-distance,
relu-l1: model.train --loss). Each variant is trained by `python -m model.train --nets F1` (the real
`caffe train`, single-threaded, --jobs at once) on the same level-1 HDF5 data, then F1 alone is
evaluated on the test split (common.evaluate; EN1 and NM1 are the released ones, which F1
alone does not use).

    .venv/bin/python benchmarks/f1_variants.py --hdf5-root dataset/hdf5 [--iters 10000] [--jobs 2]
        [--variants relu abstanh relu-local abstanh-local relu-distance relu-l1] [--out build/f1_variants] [--json FILE]

Needs the level-1 data (`./bootstrap.sh --only data1`, or the HDF5 folder of a bootstrap --out
run). Interrupted runs resume: model.train continues each net from its newest snapshot, and
finished variants are only evaluated again.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import caffelog
from common.evaluate import F1_ALONE, evaluate
from common.netfiles import DEPLOY, WEIGHTS, hdf5_dir
from common.nets import POINTS, by_name
from common.paths import HDF5_DIR, RELEASED_MODEL, ROOT, DataMissing, data_lists, rel

VARIANTS = {
    "relu": ["--act", "relu"],
    "abstanh": ["--act", "abstanh"],
    "relu-local": ["--act", "relu", "--local-share"],
    "abstanh-local": ["--act", "abstanh", "--local-share"],
    # the training loss (ReLU, shared weights): mean point distance, mean absolute error
    "relu-distance": ["--act", "relu", "--loss", "distance"],
    "relu-l1": ["--act", "relu", "--loss", "l1"],
}
DEFAULT_VARIANTS = ["relu", "abstanh", "relu-local", "abstanh-local"]


def train(variant: str, iters: int, hdf5_root: Path, out: Path) -> tuple[int, str]:
    root = out / variant
    cmd = [sys.executable, "-m", "model.train", "--nets", "F1", "--jobs", "1", "--iters", str(iters),
           *VARIANTS[variant], "--model-root", str(root / "model"), "--hdf5-root", str(hdf5_root),
           "--log-dir", str(root / "log"), "--progress-every", "120"]
    with open(root / "train.out", "a") as log:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc.returncode, (root / "train.out").read_text(errors="replace")[-1500:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iters", type=int, default=10000, help="iterations per variant (default 10000)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS)
    p.add_argument("--hdf5-root", type=Path, default=HDF5_DIR, help="level-1 HDF5 data (default dataset/hdf5)")
    p.add_argument("--data", type=Path, help="data set folder, for the test list (default as evaluate)")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "f1_variants")
    p.add_argument("--jobs", type=int, default=2, help="variants trained at once (default 2)")
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args(argv)
    if not (hdf5_dir(by_name("F1"), args.hdf5_root) / "train.txt").is_file():
        sys.exit(f"error: no F1 training data under {args.hdf5_root}; build it with "
                 "./bootstrap.sh --only data1 (or name the HDF5 folder of a run with --hdf5-root)")
    try:
        _, test_list = data_lists(args.data)
    except DataMissing as exc:
        sys.exit(f"error: {exc}")

    def run_one(variant: str) -> bool:
        (args.out / variant).mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        print(f"[{variant}] training F1, {args.iters} iterations -> {rel(args.out / variant)}", flush=True)
        rc, tail = train(variant, args.iters, args.hdf5_root, args.out)
        print(f"[{variant}] {'done' if rc == 0 else 'FAILED'} in {(time.time() - t0) / 60:.1f} min", flush=True)
        if rc != 0:
            print(tail, flush=True)
        return rc == 0

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        ok = list(pool.map(run_one, args.variants))
    failed = [v for v, good in zip(args.variants, ok) if not good]
    if failed:
        sys.exit(f"error: training failed for {', '.join(failed)}")

    rows = {}
    for variant in args.variants:
        model = args.out / variant / "model"
        for name in ("EN1", "NM1"):   # level 1 is evaluated whole; F1 alone uses only F1
            src, dst = RELEASED_MODEL / by_name(name).key, model / by_name(name).key
            dst.mkdir(parents=True, exist_ok=True)
            for f in (DEPLOY, WEIGHTS):
                shutil.copyfile(src / f, dst / f)
        result = evaluate(test_list, 1, model, progress=False)
        f1 = result.summaries[F1_ALONE]
        log = (args.out / variant / "log" / "1_F1.log").read_text(errors="replace")
        s = caffelog.summarise(log)
        rows[variant] = dict(mean_error=f1["mean_error"], per_point=[f1[p]["mean_error"] for p in POINTS],
                             failure_rate=f1["failure_rate"], test_loss=s.test_loss,
                             train_minutes=s.wall_seconds / 60, iterations=s.iterations)
    print(f"\nF1 alone on the {test_list.name} faces after {args.iters} iterations (% of box width):\n")
    head = f"{'variant':<15}" + "".join(f"{p:>7}" for p in POINTS) + f"{'mean':>7}{'fail %':>8}{'test loss':>11}{'min':>7}"
    print(head)
    print("-" * len(head))
    for variant, r in rows.items():
        print(f"{variant:<15}" + "".join(f"{100 * e:>7.2f}" for e in r["per_point"])
              + f"{100 * r['mean_error']:>7.2f}{100 * r['failure_rate']:>8.2f}{r['test_loss'] or float('nan'):>11.3e}"
              + f"{r['train_minutes']:>7.1f}")
    print(f"\nmin: training wall time with {args.jobs} variant(s) at once on this machine.")
    if args.json:
        args.json.write_text(json.dumps(dict(iters=args.iters, jobs=args.jobs, results=rows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
