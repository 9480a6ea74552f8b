"""Solver settings for every net, in one place. Command-line flags of model/generate.py and
model/train.py override them; `python -m model.generate --help` lists the flags."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace


LOSSES = ("euclidean", "distance", "l1")   # the training losses layers.j2 can build


@dataclass(frozen=True)
class SolverSettings:
    type: str = "Adam"
    base_lr: float = 0.001
    momentum: float = 0.9           # SGD only; Adam uses 0.9 / 0.999
    # L2 weight decay. 0: with Adam, 5e-4 held F1 at 3.17e-3 test loss after 5k iterations where
    # 0 reached 2.11e-3 (docs/training.md, "The recipe, and why"); the nets underfit, they do not
    # overfit.
    weight_decay: float = 0.0
    gamma: float = 0.1              # lr multiplier at each step
    step_fractions: tuple[float, ...] = (0.6, 0.85)  # steps, as fractions of max_iter
    batch_size: int = 64
    test_batch_size: int = 100
    max_iter: int = 20000
    snapshot: int = 2000
    display: int = 100
    test_interval: int = 1000
    seed: int = 1701
    mode: str = "CPU"
    device_id: int = 0              # GPU mode only; model.train also passes it as `caffe train --gpu`
    act: str = "relu"               # "relu" or "abstanh" (the paper's abs(tanh))
    # The paper's locally shared convolution weights (its region layout, where the template
    # has one; F1's S0), built from Slice + Convolution + Concat: a net option, rendered with
    # the solver's settings so that one flag reaches training and the deploy file alike.
    local_share: bool = False
    # Training loss: "euclidean" (Caffe's EuclideanLoss, squared error), "distance" (mean
    # Euclidean distance per point: what the evaluation measures) or "l1" (mean absolute
    # coordinate error), the last two built from BVLC Caffe's own layers; the deploy net has no
    # loss. distance helps F1 alone (1.53 -> 1.47%) but not the cascade: with it at every level,
    # level 3 1.092 -> 1.100% (docs/training.md, "The recipe, and why").
    loss: str = "euclidean"

    @property
    def stepvalues(self) -> list[int]:
        return sorted({max(1, int(f * self.max_iter)) for f in self.step_fractions if 0 < f < 1})


# Per-level defaults (measured budgets: result/README.md, "Training budget").
DEFAULTS = {
    1: SolverSettings(max_iter=50000, batch_size=64, snapshot=5000),
    2: SolverSettings(max_iter=40000, batch_size=64, snapshot=10000),
    3: SolverSettings(max_iter=40000, batch_size=64, snapshot=10000),
}
QUICK = {"max_iter": 300, "snapshot": 300, "test_interval": 100, "display": 50}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("solver overrides (defaults in model/config.py)")
    g.add_argument("--iters", type=int, help="max_iter")
    g.add_argument("--lr", type=float, help="base learning rate")
    g.add_argument("--batch", type=int, help="training batch size")
    g.add_argument("--weight-decay", type=float, help="L2 weight decay")
    g.add_argument("--solver-type", choices=["Adam", "SGD", "Nesterov"], help="Caffe solver type")
    g.add_argument("--snapshot", type=int, help="snapshot every N iterations")
    g.add_argument("--test-interval", type=int, help="test every N iterations")
    g.add_argument("--seed", type=int, help="random seed")
    g.add_argument("--act", choices=["relu", "abstanh"], help="activation")
    g.add_argument("--loss", choices=LOSSES,
                   help="training loss: squared error (Caffe's EuclideanLoss), mean point distance, "
                        "or mean absolute coordinate error")
    g.add_argument("--local-share", action="store_true",
                   help="the paper's locally shared convolution weights (S0, i.e. F1: 2x2, 2x2, 3x3 and 1x1 "
                        "regions in conv1-4; the other shapes share globally as before)")
    g.add_argument("--gpu", type=gpu_list, metavar="N[,M...]",
                   help="train on GPU N, or on several: one caffe process per GPU, the nets shared "
                        "out among them (needs a GPU build of Caffe)")
    g.add_argument("--quick", action="store_true", help="a few hundred iterations: a smoke run")


def gpu_list(text: str) -> list[int]:
    """'1' or '0,2,3' -> [1] or [0, 2, 3]: GPU ids, each once."""
    try:
        ids = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a GPU number or a comma list, e.g. 0 or 0,1") from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text!r}: GPU numbers are >= 0, each named once")
    return ids


def solver_flags(args: argparse.Namespace) -> list[str]:
    """The add_arguments() flags that were given, as a command line again (for scripts that
    run model.generate and model.train elsewhere, e.g. model/slurm.py)."""
    flags = ["--quick"] if getattr(args, "quick", False) else []
    for flag, value in (("--iters", args.iters), ("--lr", args.lr), ("--batch", args.batch),
                        ("--weight-decay", args.weight_decay), ("--solver-type", args.solver_type),
                        ("--snapshot", args.snapshot), ("--test-interval", args.test_interval),
                        ("--seed", args.seed), ("--act", args.act),
                        ("--loss", getattr(args, "loss", None))):
        if value is not None:
            flags += [flag, str(value)]
    if getattr(args, "local_share", False):
        flags.append("--local-share")
    if args.gpu:
        flags += ["--gpu", ",".join(map(str, args.gpu))]
    return flags


def settings_for(level: int, args: argparse.Namespace | None = None) -> SolverSettings:
    s = DEFAULTS[level]
    if args is None:
        return s
    if getattr(args, "quick", False):
        s = replace(s, **QUICK)
    over = {"max_iter": args.iters, "base_lr": args.lr, "batch_size": args.batch,
            "type": args.solver_type, "weight_decay": args.weight_decay, "snapshot": args.snapshot,
            "test_interval": args.test_interval, "seed": args.seed, "act": args.act,
            "loss": getattr(args, "loss", None),
            "local_share": getattr(args, "local_share", False) or None}
    s = replace(s, **{k: v for k, v in over.items() if v is not None})
    if args.gpu:  # the first GPU; model.train gives each caffe process its own (train.py)
        s = replace(s, mode="GPU", device_id=args.gpu[0])
    if s.snapshot > s.max_iter:
        s = replace(s, snapshot=s.max_iter)
    return s
