"""Photo collections on a Ray cluster: the per-image function (common/imagejob.py) run by Ray
actors instead of common/collection.py's local process pool (`predict --jsonl FILE --engine ray`).

Ray is an optional extra (requirements-cluster.txt, `scripts/setup.sh --cluster`); only this
module imports it. Without --address a Ray instance is started on this machine for the run.

What travels, and how:
- Code and model go once, as the job's runtime_env working_dir: a small folder made here with
  the library (common/), the cascade the driver resolved (each net's folder, about 2.3 MB), its
  box rule, the points' box rule and the confidence model. Ray uploads it to the cluster once
  (named by its content hash, so a second run with the same model uploads nothing) and each
  node unpacks it once for all its workers, so every worker runs exactly the code and weights
  this machine would, whatever checkout or model/ folder the nodes have. The face detector's
  ONNX weights come with the pinned pip package every node has installed (checked against
  their SHA-256 when loaded).
- Photos are read by the workers themselves, at their absolute path: on a cluster the folders
  must be mounted at the same path on every node (a shared file system). Only the paths go out
  and only the JSON lines come back; this machine writes the output file, as with the pool.
- One actor per CPU (or --workers), each holding its own detector and cascade like a process
  of the local pool; Ray's ActorPool hands the photos out, one at a time, to whichever actor is
  free. Scheduling, placement and retries are Ray's.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from common.imagejob import image_line, start_worker
from common.nets import NETS
from common.paths import ROOT
from common.pointsbox import POINTS_RULE

# Names inside the shipped folder (the working directory of every Ray worker).
SHIPPED_MODEL = "cascade"
SHIPPED_RULE = "box_rule.json"
SHIPPED_CONFIDENCE = "confidence.json"
# A local Ray instance keeps only paths and JSON lines in its object store: a small one leaves
# the memory to the workers (Ray's own default takes 30% of the machine).
LOCAL_OBJECT_STORE = 100 * 1024 ** 2
EXTRA_HINT = ("the ray engine is an optional extra: run scripts/setup.sh --cluster (it installs "
              "requirements-cluster.txt into .venv)")


class EngineUnavailable(Exception):
    """Ray is not installed, the cluster cannot be reached, or its workers cannot load the
    model; the message says which."""


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineUnavailable(EXTRA_HINT) from None
    return ray


def stage(options: dict, detector: str, folder: Path) -> dict:
    """Fill `folder` with what the workers need (library, cascade, box rules, confidence model)
    and return the make_landmarker options for them, with paths relative to that folder."""
    from common.boxrule import rule_path
    from common.confidence import model_file
    from common.netfiles import resolve_model
    shutil.copytree(ROOT / "common", folder / "common",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    model = resolve_model(options.get("model"))
    for spec in NETS:
        src = model / spec.key
        if src.is_dir():  # the net's own files: deploy prototxt and weights, not its snapshots
            (folder / SHIPPED_MODEL / spec.key).mkdir(parents=True)
            for f in src.iterdir():
                if f.is_file():
                    shutil.copy2(f, folder / SHIPPED_MODEL / spec.key / f.name)
    shutil.copy2(options.get("rule") or rule_path(detector), folder / SHIPPED_RULE)
    shutil.copy2(options.get("confidence") or model_file(options.get("mirror", True)), folder / SHIPPED_CONFIDENCE)
    # The rule that boxes a face from its points (the second opinion reads there too), where
    # the library looks for it (common.paths.MODEL_DIR of the unpacked folder).
    shipped_points_rule = folder / POINTS_RULE.relative_to(ROOT)
    shipped_points_rule.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(POINTS_RULE, shipped_points_rule)
    return dict(options, model=SHIPPED_MODEL, rule=SHIPPED_RULE, confidence=SHIPPED_CONFIDENCE,
                detector=detector)


class PhotoWorker:
    """A Ray actor: one detector and cascade, loaded once from the shipped folder."""

    def __init__(self, options: dict):
        from common.landmarker import LandmarkerUnavailable
        from common.paths import ROOT as here  # the unpacked working_dir on this node
        self.error = None
        try:
            start_worker(dict(options, **{k: str(here / options[k]) for k in ("model", "rule", "confidence")}))
        except LandmarkerUnavailable as exc:
            self.error = f"{os.uname().nodename}: {exc}"

    def ready(self) -> str | None:
        return self.error

    def one(self, name: str, path: str) -> dict:
        return image_line(name, path)


@contextmanager
def ray_results(todo: list[str], workers: int | None, options: dict, detector: str,
                address: str | None = None) -> Iterator[Iterator[dict]]:
    """The Ray engine (see the module doc): lines of `todo` in finishing order. `address`: an
    existing cluster ("auto", "HOST:PORT", "ray://HOST:10001"); None starts Ray here with
    `workers` CPUs (default: the cores)."""
    ray = _ray()
    from ray.util import ActorPool
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home from a local run
    with tempfile.TemporaryDirectory(prefix="deep-landmark-ray-") as tmp:
        shipped = stage(options, detector, Path(tmp))
        kwargs = dict(runtime_env={"working_dir": tmp}, logging_level=logging.WARNING)
        if address:
            kwargs["address"] = address
        else:
            kwargs.update(num_cpus=workers or os.cpu_count() or 1,
                          object_store_memory=LOCAL_OBJECT_STORE, include_dashboard=False)
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineUnavailable(f"cannot start or reach Ray ({address or 'local'}): {exc}") from None
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            # Never more actors than CPUs: an actor Ray cannot place would hold its photos forever.
            n = max(1, min(workers or cpus, cpus, len(todo)))
            actor = ray.remote(num_cpus=1)(PhotoWorker)
            actors = [actor.remote(shipped) for _ in range(n)]
            errors = [e for e in ray.get([a.ready.remote() for a in actors]) if e]
            if errors:
                raise EngineUnavailable("a Ray worker cannot load the landmarker: " + errors[0])
            pool = ActorPool(actors)
            # Absolute paths for the workers (their working directory is the shipped folder);
            # the lines keep the names as walked here, as the local pool writes them.
            yield pool.map_unordered(lambda a, name: a.one.remote(name, os.path.abspath(name)), todo)
        finally:
            ray.shutdown()
