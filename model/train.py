"""Train nets with the real Caffe: one `caffe train` process per net, several at once.

    python -m model.train --level 1                 # F1, EN1, NM1
    python -m model.train --nets LE21 LE22 --iters 5000
    python -m model.train --level 2 --jobs 1 --threads 2
    python -m model.train --level 2 --gpu 0,1       # one caffe process per GPU (GPU build of Caffe)
    python -m model.train --slurm train.sh --data DIR   # a script that submits it all to Slurm

Each process runs single-threaded (OPENBLAS_NUM_THREADS=1; on this kind of machine one process
per core beats one multi-threaded process) and logs to log/<net>.log. An interrupted run
resumes from the newest .solverstate. A net whose loss turns NaN or explodes is restarted from
a new random seed, up to --retries times. Finished nets leave model/<net>/weights.caffemodel,
and are skipped on the next run unless --force. With --gpu N[,M...] each process trains on one
of the GPUs (`caffe train --gpu=N`, and the solver's device_id), the nets shared out among them;
--slurm FILE writes the whole pipeline as Slurm jobs instead (model/slurm.py).
"""
from __future__ import annotations

import argparse
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from common import caffelog, hdf5data
from common.caffe_tools import CaffeMissing, caffe_command, check_gpu
from common import nets as nettable
from common.nets import CascadeNet
from common.netfiles import SNAPSHOTS, SOLVER, WEIGHTS, hdf5_dir, net_dir
from common.paths import HDF5_DIR, LOG_DIR, MODEL_DIR, ROOT, rel
from model.config import SolverSettings, add_arguments, settings_for
from model.generate import render_net
from model.slurm import add_slurm_arguments, write_slurm


def newest_state(snapshots: Path) -> tuple[int, Path] | None:
    states = []
    for p in snapshots.glob("*_iter_*.solverstate"):
        m = re.search(r"_iter_(\d+)\.solverstate$", p.name)
        if m and p.with_suffix(".caffemodel").is_file():
            states.append((int(m.group(1)), p))
    return max(states) if states else None


# The release was trained with OpenBLAS's kernels for AVX2 CPUs ("Zen"). On a CPU with AVX-512,
# OpenBLAS picks others that round the same products differently, and a whole run trains other
# weights. Pinned to the AVX2 kernels, F1 trained for 50,000 iterations on an AVX-512 machine is
# the release's F1 bit for bit (2026-12-01), at about 15% less speed there. A user's own
# OPENBLAS_CORETYPE wins; CPUs without AVX2 keep OpenBLAS's choice.
RELEASE_BLAS_CORE = "Zen"


def release_blas_kernels(cpuinfo: str | None = None) -> dict:
    """{"OPENBLAS_CORETYPE": "Zen"} where that pins the release's kernels, else {}."""
    if "OPENBLAS_CORETYPE" in os.environ:
        return {}
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    return {"OPENBLAS_CORETYPE": RELEASE_BLAS_CORE} if {"avx2", "fma"} <= set(flags) else {}


@dataclass
class Outcome:
    key: str
    ok: bool
    message: str
    seconds: float = 0.0
    restarts: int = 0


class NetTrainer:
    """Trains one net to completion, resuming and restarting as needed."""

    def __init__(self, spec: CascadeNet, settings: SolverSettings, model_root: Path, hdf5_root: Path,
                 log_dir: Path, threads: int, retries: int, caffe: str, stop: threading.Event,
                 init_weights: Path | None = None):
        self.spec, self.settings = spec, settings
        self.model_root, self.hdf5_root, self.log_dir = Path(model_root), Path(hdf5_root), Path(log_dir)
        self.threads, self.retries, self.caffe, self.stop = threads, retries, caffe, stop
        self.init_weights = init_weights
        self.dir = net_dir(spec, self.model_root)
        self.log = caffelog.log_path(spec, self.log_dir)
        self.proc: subprocess.Popen | None = None
        self.gpu: int | None = None
        self.iteration = 0
        self.loss: float | None = None
        self.nice = 0   # CPU priority given up to nets on the critical path (core_shares)

    def use_gpu(self, gpu: int) -> None:
        """Train on this GPU: solver_mode GPU with its device_id, and `caffe train --gpu=N`
        (Caffe's flag overrides the solver's device_id; a comma list there would mean one net
        trained data-parallel on several GPUs, so each process gets one id)."""
        self.gpu = gpu
        self.settings = replace(self.settings, mode="GPU", device_id=gpu)

    def _run_once(self, settings: SolverSettings) -> tuple[int, str | None]:
        render_net(self.spec, settings, self.model_root, self.hdf5_root)
        cmd = [self.caffe, "train", f"--solver={rel(self.dir / SOLVER)}"]
        state = newest_state(self.dir / SNAPSHOTS)
        if state:
            cmd.append(f"--snapshot={rel(state[1])}")
        elif self.init_weights:
            # A new schedule starting from trained weights (a warm restart), not a resume.
            cmd.append(f"--weights={rel(self.init_weights)}")
        if self.gpu is not None:
            cmd.append(f"--gpu={self.gpu}")
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(self.threads), GLOG_logtostderr="1",
                   **release_blas_kernels())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            log.write(f"# deep-landmark: {' '.join(cmd)} (seed {settings.seed}, {time.ctime()}"
                      + (f", nice {self.nice}" if self.nice else "") + ")\n")
            log.flush()
            # Own process group: Ctrl-C reaches Caffe through us, once, so it can snapshot.
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True)
        if self.nice:
            lower_priority(self.proc.pid, self.nice)
        why = None
        while self.proc.poll() is None:
            time.sleep(2)
            why = self._check()
            if why:
                self.proc.kill()
                self.proc.wait()
                break
        rc = self.proc.returncode
        self.proc = None
        return rc, why or self._check()

    def _check(self) -> str | None:
        text = self.log.read_text(errors="replace") if self.log.is_file() else ""
        # Only this run's part of the log: after the last marker line.
        text = text[text.rfind("# deep-landmark:"):]
        rows = caffelog.parse(text)
        if rows:
            self.iteration = rows[-1].iteration
            loss = caffelog.last_loss(rows)
            self.loss = self.loss if loss is None else loss
        return caffelog.diverged(rows)

    def train(self) -> Outcome:
        t0 = time.time()
        settings, restarts = self.settings, 0
        while True:
            rc, why = self._run_once(settings)
            if self.stop.is_set():
                return Outcome(self.spec.key, False, "interrupted; run again to resume", time.time() - t0, restarts)
            final = self.dir / SNAPSHOTS / f"{self.spec.key}_iter_{settings.max_iter}.caffemodel"
            if why is None and rc == 0 and final.is_file():
                shutil.copyfile(final, self.dir / WEIGHTS)
                return Outcome(self.spec.key, True, f"{settings.max_iter} iterations, last loss {self.loss:.4g}"
                               if self.loss is not None else "done", time.time() - t0, restarts)
            if why is None:
                return Outcome(self.spec.key, False, f"caffe exited with code {rc}; see {rel(self.log)}",
                               time.time() - t0, restarts)
            if restarts >= self.retries:
                return Outcome(self.spec.key, False, f"diverged ({why}) {restarts + 1} times; giving up",
                               time.time() - t0, restarts)
            restarts += 1
            settings = replace(settings, seed=settings.seed + 1000 * restarts)
            print(f"[{self.spec.key}] diverged: {why}; restarting from scratch with seed {settings.seed} "
                  f"({restarts}/{self.retries})", flush=True)
            for p in (self.dir / SNAPSHOTS).glob("*"):
                p.unlink()

    def interrupt(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # Caffe snapshots, then stops


def lower_priority(pid: int, nice: int) -> None:
    """`nice` added to process `pid`'s nice value, and set for its scheduling group: each Caffe
    runs in its own session, and where the kernel groups sessions (autogroup), CPU time is
    shared between the groups by the group's nice value, not the process's."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice))
    except OSError:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass   # no autogroup here: the process's nice value is what counts


SHARED_CORE_NICE = 10


def core_shares(trainers: list["NetTrainer"], jobs: int, cores: int) -> dict[str, int]:
    """Nice value per net when `jobs` CPU processes share `cores` cores (cores < jobs < 2 x cores,
    level 1: F1, EN1, NM1 on two cores). Sharing evenly, the costliest net (F1) ends last and
    alone, one core idle (in the 2026-11-29a run, F1's last 8.5 of its 46 minutes).
    Instead the costliest 2 x cores - jobs nets keep a core each, the others share the rest at
    a lower priority and take over the freed cores: no core idles while work is left. Only
    the order of work changes; each Caffe computes the same weights."""
    if not cores < jobs < 2 * cores or len(trainers) != jobs:
        return {t.spec.key: 0 for t in trainers}
    work = {t.spec.key: t.settings.max_iter * t.settings.batch_size * t.spec.width * t.spec.height
            for t in trainers}
    order = sorted(work, key=lambda k: -work[k])
    return {k: 0 if i < 2 * cores - jobs else SHARED_CORE_NICE for i, k in enumerate(order)}


def start_weights(spec: CascadeNet, args) -> Path | None:
    """The weights a net's training starts from: DIR/<net>/ with --init-from DIR, else those of
    the net the table says it starts from (common/nets.py: level 3 from level 2's net of the
    same point, trained in --model-root), unless --random-init; None: random weights."""
    if args.init_from:
        return net_dir(spec, args.init_from) / WEIGHTS
    if spec.starts_from and not args.random_init:
        return net_dir(nettable.by_name(spec.starts_from), args.model_root) / WEIGHTS
    return None


def check_inputs(specs: list[CascadeNet], args) -> None:
    """Exits with what to do when a net's training data (or the weights it starts from) is missing."""
    if args.init_from:
        absent = [s.key for s in specs if not (net_dir(s, args.init_from) / WEIGHTS).is_file()]
        if absent:
            sys.exit(f"error: --init-from {rel(args.init_from)} has no weights for {', '.join(absent)}")
    trained = {s for s in specs if (net_dir(s, args.model_root) / WEIGHTS).is_file() and not args.force}
    absent = [s for s in specs if s not in trained and (w := start_weights(s, args)) is not None
              and not w.is_file()]
    if absent:
        levels = sorted({nettable.by_name(s.starts_from).level for s in absent})
        sys.exit(f"error: {', '.join(s.key for s in absent)} start from the trained weights of "
                 f"{', '.join(s.starts_from for s in absent)}, which {rel(args.model_root)} lacks; train "
                 + " and ".join(f"level {lv}" for lv in levels) + " there first (python -m model.train --level "
                 f"{levels[0]}), or pass --random-init")
    missing = [s.key for s in specs if not hdf5data.is_complete(hdf5_dir(s, args.hdf5_root))]
    if missing:
        levels = sorted({nettable.by_name(k).level for k in missing})
        sys.exit(f"error: no training data for {', '.join(missing)}; run "
                 + " and ".join(f"python -m dataset.level{lv}" for lv in levels) + " first")


def nets_to_train(specs: list[CascadeNet], args) -> list[CascadeNet]:
    """The nets without weights (all with --force, whose old snapshots, weights and log go)."""
    todo = []
    for s in specs:
        weights = net_dir(s, args.model_root) / WEIGHTS
        if weights.is_file() and not args.force:
            print(f"[{s.key}] trained already ({rel(weights)}); skipped (--force retrains)")
            continue
        if args.force:
            for p in (net_dir(s, args.model_root) / SNAPSHOTS).glob("*"):
                p.unlink()
            weights.unlink(missing_ok=True)
            caffelog.log_path(s, args.log_dir).unlink(missing_ok=True)
        todo.append(s)
    return todo


def train_nets(specs: list[CascadeNet], args, caffe: str | None = None) -> list[Outcome]:
    """Trains the nets not trained yet; `caffe`: the command (default: the project's Caffe, whose
    GPU support is checked first when --gpu asks for it)."""
    if caffe is None:
        try:
            caffe = caffe_command()
            for gpu in args.gpu or []:
                check_gpu(caffe, gpu)
        except CaffeMissing as exc:
            sys.exit(f"error: {exc}")
    check_inputs(specs, args)
    todo = nets_to_train(specs, args)
    if not todo:
        return []
    stop = threading.Event()
    trainers = [NetTrainer(s, settings_for(s.level, args), args.model_root, args.hdf5_root,
                           args.log_dir, args.threads, args.retries, caffe, stop,
                           start_weights(s, args)) for s in todo]
    return run_trainers(trainers, args, stop)


def run_trainers(trainers: list[NetTrainer], args, stop: threading.Event) -> list[Outcome]:
    """Several trainers at once (one per GPU with --gpu, else per core), progress lines every
    --progress-every seconds; Ctrl-C asks every Caffe to snapshot and stop."""
    pending: queue.Queue[NetTrainer] = queue.Queue()
    for t in trainers:
        pending.put(t)
    running: set[NetTrainer] = set()
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def worker(gpu: int | None):
        while not stop.is_set():
            try:
                t = pending.get_nowait()
            except queue.Empty:
                return
            if gpu is not None:
                t.use_gpu(gpu)
            with lock:
                running.add(t)
            print(f"[{t.spec.key}] training {t.settings.max_iter} iterations -> {rel(t.log)}", flush=True)
            out = t.train()
            with lock:
                running.discard(t)
                outcomes.append(out)
            state = "done" if out.ok else "stopped" if stop.is_set() else "FAILED"
            print(f"[{out.key}] {state}: {out.message} ({out.seconds / 60:.1f} min)", flush=True)

    # One process per GPU (each worker thread keeps its GPU), else one per core (default_jobs).
    gpus = args.gpu or []
    cores = max(1, (os.cpu_count() or 1) // max(1, args.threads))   # cores' worth per process
    jobs = max(1, min(args.jobs or len(gpus) or default_jobs(len(trainers), cores), len(trainers)))
    where = (f"on GPU {','.join(map(str, gpus))}" if gpus else f"{args.threads} BLAS thread(s) each")
    print(f"training {len(trainers)} nets, {jobs} at a time, {where}")
    if not gpus:
        shares = core_shares(trainers, jobs, cores)
        for t in trainers:
            t.nice = shares[t.spec.key]
        if any(shares.values()):
            first = [k for k, v in shares.items() if not v]
            print(f"{', '.join(first)} {'keeps a core' if len(first) == 1 else 'keep a core each'} (the most "
                  f"work); {', '.join(k for k, v in shares.items() if v)} share the rest at nice {SHARED_CORE_NICE}")
    threads = [threading.Thread(target=worker, args=(gpus[i % len(gpus)] if gpus else None,), daemon=True)
               for i in range(jobs)]
    for th in threads:
        th.start()
    last = 0.0
    try:
        while any(th.is_alive() for th in threads):
            time.sleep(1)
            if time.time() - last >= args.progress_every:
                last = time.time()
                with lock:
                    now = [f"{t.spec.key} {t.iteration}/{t.settings.max_iter}"
                           + (f" loss {t.loss:.4g}" if t.loss is not None else "") for t in running]
                if now:
                    print(f"  {time.strftime('%H:%M:%S')} " + " | ".join(now), flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: asking Caffe to snapshot and stop; run the same command to resume", flush=True)
        stop.set()
        for t in list(running):
            t.interrupt()
        for th in threads:
            th.join()
    return outcomes


def default_jobs(n_nets: int, cores: int | None = None) -> int:
    """Caffe processes at once on the CPU: one per core; but a few nets that do not divide
    evenly among the cores (level 1: three nets, two cores) all at once, so that the cores
    share them and no core idles while the last net trains alone."""
    cores = cores or os.cpu_count() or 1
    if cores < n_nets < 2 * cores and n_nets % cores:
        return n_nets
    return cores


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None, caffe: str | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--level", type=int, choices=nettable.LEVELS)
    p.add_argument("--nets", nargs="+", help="net names or keys (default: all nets of --level)")
    p.add_argument("--jobs", type=int, help="caffe processes at once (default: one per GPU with --gpu, else one per core, "
                        "or all nets when there are fewer than twice the cores and they do not divide evenly)")
    p.add_argument("--threads", type=int, default=1, help="OpenBLAS threads per process (default 1)")
    p.add_argument("--retries", type=int, default=2, help="restarts of a diverged net (default 2)")
    p.add_argument("--force", action="store_true", help="retrain from scratch even if trained")
    p.add_argument("--progress-every", type=float, default=30.0, help="seconds between progress lines")
    p.add_argument("--init-from", type=Path, metavar="DIR",
                   help="start each net from the weights in DIR/<net>/weights.caffemodel with a new "
                        "solver schedule (a warm restart; the new nets go to --model-root)")
    p.add_argument("--random-init", action="store_true",
                   help="every net from random weights (the paper's way); by default level 3 starts from "
                        "level 2's trained net of the same point (common/nets.py)")
    p.add_argument("--model-root", type=Path, default=MODEL_DIR)
    p.add_argument("--hdf5-root", type=Path, default=HDF5_DIR)
    p.add_argument("--log-dir", type=Path, default=LOG_DIR)
    add_arguments(p)
    add_slurm_arguments(p)
    args = p.parse_args(argv)
    if args.slurm:
        return write_slurm(args, p)
    if not args.level and not args.nets:
        p.error("name --level or --nets")
    try:
        specs = [nettable.by_name(n) for n in args.nets] if args.nets else nettable.of_level(args.level)
    except KeyError as exc:
        p.error(str(exc.args[0]))
    # Stop cleanly on Ctrl-C or SIGTERM, also when started in the background (where the shell
    # leaves SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    outcomes = train_nets(specs, args, caffe)
    failed = [o for o in outcomes if not o.ok]
    restarted = [o for o in outcomes if o.restarts]
    for o in restarted:
        print(f"note: {o.key} was restarted {o.restarts} time(s) after diverging")
    if failed:
        print("not finished: " + ", ".join(f"{o.key} ({o.message})" for o in failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
