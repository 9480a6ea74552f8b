"""Where each net's files live, and which model folder a command uses.

A model folder holds one folder per net, named by its key (model/1_F1/, model/2_LE21/): the
prototxt files model.generate writes (train, solver, deploy), Caffe's snapshots while it trains,
and weights.caffemodel once trained. Inference needs only deploy.prototxt and weights.caffemodel
(all that model/released/ holds). Each net's training data is a folder of the same name under
dataset/hdf5/ (HDF5_DIR).
"""
from __future__ import annotations

import os
from pathlib import Path

from common.nets import LEVELS, NETS, CascadeNet, of_level
from common.paths import HDF5_DIR, MODEL_DIR, RELEASED_MODEL

TRAIN_NET = "train.prototxt"
SOLVER = "solver.prototxt"
DEPLOY = "deploy.prototxt"
WEIGHTS = "weights.caffemodel"
SNAPSHOTS = "snapshots"


def net_dir(spec: CascadeNet, model_root: str | os.PathLike = MODEL_DIR) -> Path:
    """The folder of net `spec` in a model folder."""
    return Path(model_root) / spec.key


def deploy_files(spec: CascadeNet, model_root: str | os.PathLike) -> tuple[Path, Path]:
    """(deploy.prototxt, weights.caffemodel) of net `spec`: what inference reads."""
    folder = net_dir(spec, model_root)
    return folder / DEPLOY, folder / WEIGHTS


def has_net(spec: CascadeNet, model_root: str | os.PathLike) -> bool:
    """Whether the model folder holds both files inference needs for net `spec`."""
    return all(p.is_file() for p in deploy_files(spec, model_root))


def hdf5_dir(spec: CascadeNet, hdf5_root: str | os.PathLike = HDF5_DIR) -> Path:
    """The folder of net `spec`'s training data (train.h5, test.h5, meta.json)."""
    return Path(hdf5_root) / spec.key


def levels_available(model_root: str | os.PathLike) -> int:
    """The highest level L such that every net of levels 1..L is in the folder (0: none)."""
    top = 0
    for level in LEVELS:
        if not all(has_net(s, model_root) for s in of_level(level)):
            break
        top = level
    return top


def missing_nets(model_root: str | os.PathLike, levels: int) -> list[str]:
    """Keys of the nets of levels 1..`levels` the folder lacks."""
    return [s.key for s in NETS if s.level <= levels and not has_net(s, model_root)]


# Names the model folder when no --model is given (predict, webapp, evaluate, report, benchmarks).
MODEL_ENV = "DEEP_LANDMARK_MODEL"
MODEL_HELP = (f"model folder (default: ${MODEL_ENV}, else model/ when it holds all {len(LEVELS)} "
              "levels, else model/released/)")
TRAINED_HERE_HELP = "model folder of the nets being trained (default: model/)"


def resolve_model(arg: str | os.PathLike | None = None, *, trained_here: bool = False) -> Path:
    """The model folder a command uses: the folder it is given (--model); else, for the steps
    that work on the nets being trained here (`trained_here`: dataset.level2/3 centre their
    patches on the levels trained so far, model.generate writes them, model.release copies
    them), model/; else $DEEP_LANDMARK_MODEL, else default_model()."""
    if arg:
        return Path(arg).expanduser().resolve()
    if trained_here:
        return MODEL_DIR
    chosen = os.environ.get(MODEL_ENV)
    return Path(chosen).expanduser().resolve() if chosen else default_model()


def default_model() -> Path:
    """model/ when it holds the whole cascade trained here, else the released model (else
    whatever part model/ has)."""
    if levels_available(MODEL_DIR) == LEVELS[-1]:
        return MODEL_DIR
    if levels_available(RELEASED_MODEL) >= 1 or levels_available(MODEL_DIR) == 0:
        return RELEASED_MODEL
    return MODEL_DIR
