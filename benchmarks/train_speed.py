"""Caffe training speed (iterations/s and samples/s) of F1 and a 15x15 net on random data.

    .venv/bin/python benchmarks/train_speed.py                  # F1 and LE21, default lengths
    .venv/bin/python benchmarks/train_speed.py --iters 50       # a quick check that it runs
    .venv/bin/python benchmarks/train_speed.py --nets F1 EN1 LE21 RM32
    .venv/bin/python benchmarks/train_speed.py --baseline /path/to/other/caffe [--rounds 3]

For each net, three set-ups:
  1x1t  one `caffe train`, OPENBLAS_NUM_THREADS=1
  2x1t  two `caffe train` at once, each OPENBLAS_NUM_THREADS=1 (per process, and both together)
  1x2t  one `caffe train`, OPENBLAS_NUM_THREADS=2
With --baseline CAFFE, instead: one single-threaded `caffe train` with this project's Caffe and
one with the other binary (e.g. a build without scripts/caffe/04-cpu-training-speed.patch), taking
turns --rounds times; prints the best of each and the speed-up, and whether the weights both
wrote after the same iterations are byte for byte the same.
Speed is measured between Caffe's progress lines (glog time stamps), so start-up and the
final snapshot do not count. Run it on an otherwise idle machine: other processes skew it.
Everything goes to a temporary folder that is removed afterwards (--keep keeps it).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from common import caffelog, hdf5data
from common.caffe_tools import CaffeMissing, caffe_command
from common.nets import CascadeNet, by_name
from model.config import settings_for
from model.generate import render_net

# Default iterations per net shape: roughly a minute each on one core of a 2020s CPU.
DEFAULT_ITERS = {"S0": 1500, "S1": 1500, "S2": 10000}
SAMPLES = 2000   # random training samples per net (Caffe loops over them)
SETUPS = (("1x1t", 1, 1), ("2x1t", 2, 1), ("1x2t", 1, 2))   # name, processes, BLAS threads each

# glog: "I1128 08:56:10.124317  5109 solver.cpp:239] Iteration 3900 (27.86 iter/s, ...), loss = ..."
def random_data(spec: CascadeNet, hdf5_root: Path, rng: np.random.Generator) -> None:
    folder = hdf5_root / spec.key
    x = rng.standard_normal((SAMPLES, 1, spec.height, spec.width)).astype(np.float32)
    y = rng.uniform(0.0, 1.0, (SAMPLES, spec.n_outputs)).astype(np.float32)
    hdf5data.write(folder / "train.h5", x, y)
    hdf5data.write(folder / "test.h5", x[:100], y[:100])
    hdf5data.write_meta(folder, train=SAMPLES, test=100)


def speed(log_text: str) -> float | None:
    """Iterations per second between the first progress line after iteration 0 and the last."""
    points = [p for p in caffelog.iteration_times(log_text) if p[0] > 0]
    if len(points) < 2:
        return None
    (i0, t0), (i1, t1) = points[0], points[-1]
    return (i1 - i0) / (t1 - t0) if t1 > t0 else None


def run_setup(spec: CascadeNet, iters: int, processes: int, threads: int, work: Path, hdf5_root: Path,
              caffe: str, tag: str = "") -> list[float]:
    """Iterations/s of each of `processes` simultaneous `caffe train` runs."""
    # Caffe insists on a test interval when the net has a test phase: one test, at the end.
    settings = replace(settings_for(spec.level), max_iter=iters, display=max(1, iters // 10),
                       snapshot=0, test_interval=iters)
    procs = []
    for i in range(processes):
        model_root = work / f"{spec.key}_{processes}x{threads}t_{i}{tag}"
        folder = render_net(spec, settings, model_root, hdf5_root)
        log = open(model_root / "caffe.log", "w")
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), GLOG_logtostderr="1")
        procs.append((subprocess.Popen([caffe, "train", f"--solver={folder / 'solver.prototxt'}"], cwd=ROOT,
                                       stdout=log, stderr=subprocess.STDOUT, env=env), log, model_root))
    rates = []
    for proc, log, model_root in procs:
        rc = proc.wait()
        log.close()
        text = (model_root / "caffe.log").read_text(errors="replace")
        if rc != 0:
            sys.exit(f"error: caffe failed (exit {rc}) for {spec.key}; its log:\n{text[-2000:]}")
        rate = speed(text)
        if rate is None:
            sys.exit(f"error: too few progress lines in {model_root / 'caffe.log'}; use more --iters")
        rates.append(rate)
    return rates


def compare(specs: list[CascadeNet], iters: int | None, rounds: int, caffe: str, baseline: str,
            work: Path) -> None:
    """This project's Caffe against `baseline`, one single-threaded process at a time, in turns."""
    rng = np.random.default_rng(0)
    rows = []
    for spec in specs:
        random_data(spec, work / "hdf5", rng)
        n = iters or DEFAULT_ITERS[spec.template]
        best = {"ours": 0.0, "baseline": 0.0}
        for r in range(rounds):
            for name, binary in (("baseline", baseline), ("ours", caffe)):
                print(f"{spec.name}: {name}, round {r + 1}/{rounds}, {n} iterations ...", end=" ", flush=True)
                t0 = time.time()
                rate = run_setup(spec, n, 1, 1, work, work / "hdf5", binary, tag=f"_{name}")[0]
                print(f"{rate:.1f} iter/s ({time.time() - t0:.0f} s)", flush=True)
                best[name] = max(best[name], rate)
        # Both ran from the same seed on the same data: the final weights tell whether they
        # computed the same numbers.
        weights = [work / f"{spec.key}_1x1t_0_{name}" / spec.key / "snapshots" / f"{spec.key}_iter_{n}.caffemodel"
                   for name in ("baseline", "ours")]
        same = all(w.is_file() for w in weights) and weights[0].read_bytes() == weights[1].read_bytes()
        rows.append((spec.name, best["baseline"], best["ours"], same))
    print()
    head = f"{'net':<6}{'baseline iter/s':>17}{'ours iter/s':>13}{'speed-up':>10}  same weights"
    print(head)
    print("-" * len(head))
    for net, base, ours, same in rows:
        print(f"{net:<6}{base:>17.1f}{ours:>13.1f}{ours / base:>9.2f}x  {'yes' if same else 'NO'}")
    print(f"\nbest of {rounds} round(s) each; one single-threaded process at a time.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=["F1", "LE21"], help="nets to measure (default F1 LE21)")
    p.add_argument("--iters", type=int, help="iterations per run (default: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_ITERS.items()) + " by net shape)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (prototxt, logs)")
    p.add_argument("--baseline", metavar="CAFFE", help="compare with this caffe binary instead (see above)")
    p.add_argument("--rounds", type=int, default=3, help="turns each with --baseline (default 3)")
    args = p.parse_args(argv)
    try:
        caffe = caffe_command()
    except CaffeMissing as exc:
        sys.exit(f"error: {exc}")
    try:
        specs = [by_name(n) for n in args.nets]
    except KeyError as exc:
        p.error(str(exc.args[0]))
    if args.iters is not None and args.iters < 20:
        p.error("--iters must be at least 20 (speed is measured between progress lines)")
    work = Path(tempfile.mkdtemp(prefix="train_speed_"))
    load = os.getloadavg()[0]
    print(f"cores: {os.cpu_count()}, load average before: {load:.2f}"
          + ("  (busy machine: numbers will be low)" if load > 0.5 else ""))
    if args.baseline and not (Path(args.baseline).is_file() and os.access(args.baseline, os.X_OK)):
        p.error(f"--baseline {args.baseline}: not an executable file")
    rows = []
    try:
        if args.baseline:
            compare(specs, args.iters, args.rounds, caffe, args.baseline, work)
            return 0
        rng = np.random.default_rng(0)
        for spec in specs:
            random_data(spec, work / "hdf5", rng)
            iters = args.iters or DEFAULT_ITERS[spec.template]
            batch = settings_for(spec.level).batch_size
            for name, procs, threads in SETUPS:
                t0 = time.time()
                print(f"{spec.name}: {name}, {iters} iterations ...", end=" ", flush=True)
                rates = run_setup(spec, iters, procs, threads, work, work / "hdf5", caffe)
                print(f"{time.time() - t0:.0f} s", flush=True)
                per = float(np.mean(rates))
                rows.append((spec.name, f"{spec.height}x{spec.width}", name, batch, per, per * batch,
                             sum(rates) * batch))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    head = f"{'net':<6}{'input':>7}{'setup':>7}{'batch':>7}{'iter/s':>10}{'samples/s':>11}{'total samples/s':>17}"
    print(head)
    print("-" * len(head))
    for net, size, name, batch, per, samples, total in rows:
        print(f"{net:<6}{size:>7}{name:>7}{batch:>7}{per:>10.1f}{samples:>11.0f}{total:>17.0f}")
    print("\niter/s and samples/s are per process; total = all processes of the set-up together.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
