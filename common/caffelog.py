"""Caffe training logs (`caffe train` output): parse into rows, write CSV, plot loss curves.

    python -m common.caffelog log/1_F1.log [...]   # writes log/1_F1.csv and log/1_F1.png
    python -m common.caffelog --level 2            # every level-2 net, plus log/level2.png
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from common import plotting
from common.console import log_to_console
from common.nets import LEVELS, CascadeNet, of_level
from common.paths import LOG_DIR, rel

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf|-nan|-inf))"
RE_TRAIN = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _NUM)
RE_LR = re.compile(r"Iteration (\d+), lr = " + _NUM)
RE_TESTING = re.compile(r"Iteration (\d+), Testing net")
RE_TEST_OUT = re.compile(r"Test net output #\d+: (\w+) = " + _NUM)
RE_SPEED = re.compile(r"Iteration (\d+) \(([\d.]+) iter/s")
RE_PROGRESS = re.compile(r"Iteration (\d+) \(")  # "Iteration N (x iter/s, ...), loss = ..."


@dataclass
class Row:
    iteration: int
    # None: not in the log at this iteration (a logged NaN stays NaN)
    train_loss: float | None = None
    test_loss: float | None = None
    lr: float | None = None


def _f(s: str) -> float:
    return float(s.replace("-nan", "nan"))


def parse(text: str) -> list[Row]:
    """Rows by iteration, in order of first appearance. A resumed run that repeats iterations
    overwrites the earlier values, so the curve shows what the final weights came from."""
    rows: dict[int, Row] = {}
    testing_iter = None

    def row(it: int) -> Row:
        if it not in rows:
            rows[it] = Row(it)
        return rows[it]

    for line in text.splitlines():
        if m := RE_TRAIN.search(line):
            row(int(m.group(1))).train_loss = _f(m.group(2))
        elif m := RE_LR.search(line):
            row(int(m.group(1))).lr = _f(m.group(2))
        elif m := RE_TESTING.search(line):
            testing_iter = int(m.group(1))
        elif (m := RE_TEST_OUT.search(line)) and testing_iter is not None and m.group(1) == "loss":
            row(testing_iter).test_loss = _f(m.group(2))
    return sorted(rows.values(), key=lambda r: r.iteration)


def parse_file(path: Path) -> list[Row]:
    return parse(Path(path).read_text(errors="replace"))


def last_speed(text: str) -> float | None:
    """Iterations per second Caffe last reported."""
    found = RE_SPEED.findall(text)
    return float(found[-1][1]) if found else None


def last_loss(rows: list[Row], test: bool = False) -> float | None:
    """The last train (or `test`) loss logged, None when there is none."""
    values = [r.test_loss if test else r.train_loss for r in rows]
    return next((v for v in reversed(values) if v is not None), None)


def diverged(rows: list[Row], limit: float = 1e3) -> str | None:
    """Why the run looks broken (a NaN or infinite loss, or one above `limit`), or None."""
    for r in rows:
        for name, v in (("train", r.train_loss), ("test", r.test_loss)):
            if v is not None and (not math.isfinite(v) or v > limit):
                return f"{name} loss {v} at iteration {r.iteration}"
    return None


# glog's line prefix: "I1128 08:56:10.124317  5109 solver.cpp:239] ..." (level, month, day, time);
# glog 0.6 (Debian 12, which the Caffe built by the set-up links) puts the year first:
# "I20261128 08:56:10.124317 ...".
_STAMP = re.compile(r"^[IWEF](?:\d{4})?(\d{2})(\d{2}) (\d{2}):(\d{2}):(\d{2}\.\d+)")


def stamp_seconds(line: str) -> float | None:
    """Seconds since the start of the month of a glog line's time stamp (None: no stamp)."""
    m = _STAMP.match(line)
    if m is None:
        return None
    return ((int(m.group(2)) * 24 + int(m.group(3))) * 60 + int(m.group(4))) * 60 + float(m.group(5))


def iteration_times(text: str) -> list[tuple[int, float]]:
    """(iteration, stamp_seconds) of each of Caffe's progress lines."""
    out = []
    for line in text.splitlines():
        if (m := RE_PROGRESS.search(line)) and (secs := stamp_seconds(line)) is not None:
            out.append((int(m.group(1)), secs))
    return out


def wall_seconds(text: str) -> float:
    """Training time in a log: first to last glog time stamp of each run, summed over the
    runs appended to it (a resumed run adds a segment)."""
    total, first, last = 0.0, None, None
    for line in text.splitlines():
        if line.startswith("# deep-landmark:"):
            if first is not None and last is not None:
                total += max(0.0, last - first)
            first = last = None
        elif (secs := stamp_seconds(line)) is not None:
            first = secs if first is None else first
            last = secs
    if first is not None and last is not None:
        total += max(0.0, last - first)
    return total


@dataclass(frozen=True)
class LogSummary:
    """Where a training log ended (the report's budget table, the release manifest)."""
    iterations: int                # the last iteration logged (0: none)
    train_loss: float | None       # the last losses logged
    test_loss: float | None
    wall_seconds: float            # wall_seconds()
    speed: float | None            # last_speed()


def summarise(text: str) -> LogSummary:
    rows = parse(text)
    return LogSummary(iterations=max((r.iteration for r in rows), default=0), train_loss=last_loss(rows),
                      test_loss=last_loss(rows, test=True), wall_seconds=wall_seconds(text),
                      speed=last_speed(text))


def log_path(spec: CascadeNet, log_dir: str | os.PathLike = LOG_DIR) -> Path:
    """Where model.train writes net `spec`'s Caffe log: log/<level>_<name>.log."""
    return Path(log_dir) / f"{spec.key}.log"


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["iteration", "train_loss", "test_loss", "lr"])
        for r in rows:
            w.writerow([r.iteration] + ["" if v is None else f"{v:.8g}"
                                        for v in (r.train_loss, r.test_loss, r.lr)])


def _draw(ax, rows: list[Row], title: str) -> None:
    tr = [(r.iteration, r.train_loss) for r in rows if r.train_loss is not None and r.train_loss > 0]
    te = [(r.iteration, r.test_loss) for r in rows if r.test_loss is not None and r.test_loss > 0]
    if tr:
        ax.plot(*zip(*tr), label="train", lw=1)
    if te:
        ax.plot(*zip(*te), "o-", label="test", ms=3, lw=1)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("iteration", fontsize=8)
    ax.set_ylabel("training loss", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="both", alpha=0.3)
    if tr or te:
        ax.legend(fontsize=7)


def plot(rows: list[Row], path: Path, title: str) -> None:
    fig, ax = plotting.pyplot().subplots(figsize=(6, 4))
    _draw(ax, rows, title)
    plotting.save(fig, path, dpi=100)


def plot_many(logs: dict[str, list[Row]], path: Path, title: str) -> None:
    n = len(logs)
    cols = min(n, 5) or 1
    nrows = max(1, math.ceil(n / cols))
    fig, axes = plotting.pyplot().subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, (name, rows) in zip(axes.ravel(), logs.items()):
        _draw(ax, rows, name)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    plotting.save(fig, path, dpi=90)


def process(log: Path) -> list[Row]:
    """CSV and PNG next to the log; returns the rows."""
    log = Path(log)
    rows = parse_file(log)
    write_csv(rows, log.with_suffix(".csv"))
    plot(rows, log.with_suffix(".png"), log.stem)
    return rows


def process_level(level: int, log_dir: Path = LOG_DIR) -> Path | None:
    """CSV and PNG of each log of the level's nets, and one page of all their curves (None: no
    logs)."""
    logs = {}
    for spec in of_level(level):
        log = log_path(spec, log_dir)
        if log.is_file():
            logs[spec.key] = process(log)
    if not logs:
        return None
    page = Path(log_dir) / f"level{level}.png"
    plot_many(logs, page, f"level {level}: training (line) and test (dots) loss")
    return page


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("logs", nargs="*", type=Path, help="Caffe log files")
    p.add_argument("--level", type=int, choices=LEVELS, help="all logs of a level, plus one page")
    p.add_argument("--log-dir", type=Path, default=LOG_DIR)
    args = p.parse_args(argv)
    if not args.logs and not args.level:
        p.error("name log files or --level")
    log_to_console()
    for log in args.logs:
        if not log.is_file():
            sys.exit(f"error: no such log: {log}")
        rows = process(log)
        print(f"{rel(log)}: {len(rows)} rows -> {rel(log.with_suffix('.csv'))}, {rel(log.with_suffix('.png'))}")
    if args.level:
        page = process_level(args.level, args.log_dir)
        if page is None:
            sys.exit(f"error: no level-{args.level} logs in {args.log_dir}")
        print(f"level {args.level}: {rel(page)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

