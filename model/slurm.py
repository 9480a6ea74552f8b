"""Training beyond one machine: `python -m model.train --slurm FILE` writes a bash script that
submits the whole pipeline to Slurm (template model/templates/slurm.sh.j2).

Per level: one job for the data (the commands ./bootstrap.sh runs: model.generate and
dataset.level1, or the previous level's loss curves and dataset.levelL), then a job array with
one task per net of the level (`model.train --nets NET --jobs 1`), waiting for the data job
(--dependency=afterok); the next level's data job waits for the whole array. A report job
(common.caffelog, common.report) comes last. The nets come from common/nets.py's table.
With --gpu each array task asks Slurm for one GPU (--gres=gpu:1) and trains on GPU 0, which
is the GPU Slurm gave it (Slurm sets CUDA_VISIBLE_DEVICES).
"""
from __future__ import annotations

import argparse
import shlex
import stat
import sys
from pathlib import Path

import jinja2

from common import nets as nettable
from common.paths import RESULT_DIR, ROOT, DataMissing, data_lists, rel
from model.config import solver_flags

TEMPLATE = Path(__file__).resolve().parent / "templates" / "slurm.sh.j2"
DATA_CPUS = 8   # the data steps cut and write patches on every core they are given


def add_slurm_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a Slurm cluster instead of this machine "
                             "(docs/training.md, 'GPUs and clusters')")
    g.add_argument("--slurm", type=Path, metavar="FILE",
                   help="write a script that submits data, training (one array task per net) and "
                        "report as Slurm jobs, level after level; `bash FILE` submits them")
    g.add_argument("--data", help="with --slurm: the data set folder (default $DEEP_LANDMARK_DATA or dataset/train/)")
    g.add_argument("--result-dir", type=Path, default=RESULT_DIR, help="with --slurm: where the report goes")
    g.add_argument("--sbatch", default="", metavar="OPTIONS",
                   help="with --slurm: options for every sbatch, e.g. \"--partition=gpu --time=2:00:00\"")
    g.add_argument("--data-cpus", type=int, default=DATA_CPUS,
                   help=f"with --slurm: CPUs of each data and report job (default {DATA_CPUS})")


def _q(path_or_text) -> str:
    """Shell-quoted, paths relative to the project root where inside it."""
    return shlex.quote(rel(path_or_text) if isinstance(path_or_text, Path) else str(path_or_text))


def render(args: argparse.Namespace) -> str:
    """The script's text for these model.train arguments."""
    train, _ = data_lists(args.data)  # DataMissing, with how to get the data, when absent
    # The GPU Slurm gives a task is that task's GPU 0.
    flags = solver_flags(argparse.Namespace(**{**vars(args), "gpu": [0] if args.gpu else None}))
    levels = [(lv, [s.key for s in nettable.of_level(lv)]) for lv in (1, 2, 3)]
    # No Jinja comments: bash's ${#array[@]} would open one.
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, comment_start_string="<%#", comment_end_string="#%>")
    return env.from_string(TEMPLATE.read_text()).render(
        script_name=shlex.quote(args.slurm.name), n_nets=len(nettable.NETS), levels=levels,
        root=shlex.quote(str(ROOT)), data=_q(train.parent), model=_q(Path(args.model_root)),
        hdf5=_q(Path(args.hdf5_root)), logs=_q(Path(args.log_dir)), result=_q(Path(args.result_dir)),
        sbatch_args=shlex.join(shlex.split(args.sbatch)),
        flags=shlex.join(flags),
        # model.train's own options that its array tasks need too (model.generate lacks them)
        train_flags=" --random-init" if args.random_init else "",
        threads=args.threads, retries=args.retries, data_cpus=args.data_cpus,
        gres="--gres=gpu:1 " if args.gpu else "")


def write_slurm(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.level or args.nets or args.init_from or args.force:
        parser.error("--slurm writes the whole pipeline: it does not go with --level, --nets, "
                     "--init-from or --force")
    try:
        text = render(args)
    except DataMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # an unbalanced quote in --sbatch
        parser.error(f"--sbatch: {exc}")
    args.slurm.parent.mkdir(parents=True, exist_ok=True)
    args.slurm.write_text(text)
    args.slurm.chmod(args.slurm.stat().st_mode | stat.S_IXUSR)
    print(f"wrote {rel(args.slurm)}; submit the pipeline with `bash {rel(args.slurm)}` on the "
          "cluster's login node")
    return 0
