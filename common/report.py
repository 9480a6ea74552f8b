"""The evaluation report in result/: error tables per level beside the published numbers
(this project's with test-time mirroring, without it, and on the face detector's boxes with
--detector-boxes), the training budget, histograms, loss curves and example images.

    python -m common.report [--data DIR] [--model DIR] [--out result/] [--log-dir log/] [--detector-boxes]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common import caffelog
from common.cascade import ModelMissing
from common.detectors import DEFAULT_DETECTOR
from common.console import log_to_console
from common.evaluate import Evaluation, evaluate, histogram
from common.listfile import ListFileError
from common.metrics import FAILURE, result_name
from common.netfiles import MODEL_HELP, levels_available, resolve_model
from common.nets import NETS, POINTS
from common.paths import DATA_ENV, LOG_DIR, RESULT_DIR, DataMissing, data_lists, rel

# Published mean errors in % of box width on the CUHK test split: the paper's (Sun, Wang, Tang,
# CVPR 2013; read off its bar charts, to about +-0.05) and those of the earlier Caffe
# reimplementation (github.com/luoyetx/deep-landmark, its log/level{1,2,3}_test.log).
PUBLISHED = {
    "paper, F1 alone": [1.40, 1.42, 1.64, 1.76, 1.80],
    "paper, level 1": [1.28, 1.30, 1.40, 1.64, 1.67],
    "paper, level 2": [0.97, 0.94, 1.17, 1.36, 1.38],
    "paper, level 3": [0.90, 0.88, 1.17, 1.33, 1.33],
    "luoyetx Caffe reimpl., level 1 (F1 only)": [2.21, 2.28, 2.99, 2.84, 2.89],
    "luoyetx, level 2": [1.50, 1.47, 1.80, 1.94, 1.94],
    "luoyetx, level 3": [1.34, 1.30, 1.70, 1.81, 1.84],
}
PUBLISHED_FAILURES = {
    "paper, level 3 (read off its bar chart)": [0.8, 0.5, 0.4, 1.6, 1.7],
    "luoyetx, level 3": [2.8, 2.7, 3.1, 4.9, 4.8],
}


def _row(name: str, values) -> str:
    return f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |"


def _machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}"


def budget_rows(log_dir: Path) -> list[str]:
    """A table row per net that has a training log."""
    rows = []
    for spec in NETS:
        log = caffelog.log_path(spec, log_dir)
        if not log.is_file():
            continue
        s = caffelog.summarise(log.read_text(errors="replace"))
        nan = float("nan")
        rows.append(f"| {spec.key} | {s.iterations} | {s.wall_seconds / 60:.1f} | "
                    f"{s.speed if s.speed else nan:.1f} | "
                    f"{nan if s.train_loss is None else s.train_loss:.2e} | "
                    f"{nan if s.test_loss is None else s.test_loss:.2e} |")
    return rows


def examples(faces, preds: np.ndarray, path: Path, n: int = 8) -> None:
    """A strip of test faces: truth in green, prediction in red (`preds` (N, 5, 2) pixels)."""
    tiles = []
    for f, pr in zip(faces[:n], preds[:n]):
        img = cv2.imread(str(f.image_path))
        b = f.box.moved(scale=1.5)
        size = 200
        crop = b.crop(img, size, size)
        for pts, colour in ((f.points, (0, 200, 0)), (pr, (0, 0, 255))):
            for cx, cy in b.to_relative(pts) * size - 0.5:  # box.py's crop convention
                cv2.circle(crop, (int(round(cx)), int(round(cy))), 3, colour, -1, cv2.LINE_AA)
        tiles.append(crop)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.hstack(tiles))


def write_report(data: str | None, model: Path, out: Path, log_dir: Path, limit: int | None = None,
                 detector_boxes: bool = False) -> Path:
    """Evaluate `model` on the data set's test list (with and without test-time mirroring, and
    on the default face detector's boxes if `detector_boxes`: a few minutes more), write result
    files and README.md into `out`; returns the README."""
    list_path = data_lists(data)[1]
    levels = levels_available(model)
    if levels == 0:
        raise ModelMissing(f"no trained nets in {rel(model)}")
    t0 = time.time()
    result = evaluate(list_path, levels, model, limit)
    secs = time.time() - t0
    others = {"no mirroring": evaluate(list_path, levels, model, limit, mirror=False).summaries}
    if detector_boxes:
        others[f"{DEFAULT_DETECTOR} boxes"] = evaluate(list_path, levels, model, limit, boxes="detector").summaries
    write_files(result, list_path, model, out, log_dir, others)
    readme = out / "README.md"
    from common.confidence import report_section  # the confidence's own measurements, kept across runs
    readme.write_text(render(result, list_path.name, model, secs, budget_rows(log_dir), figures(out, levels),
                             others) + "\n".join(report_section(out)))
    return readme


def write_files(result: Evaluation, list_path: Path, model: Path, out: Path, log_dir: Path,
                others: dict[str, dict] | None = None) -> None:
    """evaluation.json, the histograms, the examples and the loss curves."""
    levels = len(result.predictions)
    n = len(result.faces)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(
        {"list": str(list_path.name), "faces": n, "model": rel(model), "mirror": True,
         "levels": result.summaries, **{name.replace(" ", "_"): s for name, s in (others or {}).items()}},
        indent=1) + "\n")
    for lv in range(1, levels + 1):
        histogram(result.errors[str(lv)], out / f"level{lv}_test.png", f"level {lv} on {list_path.name} ({n} faces)")
    examples(result.faces, result.predictions[-1], out / "examples.png")
    for lv in range(1, levels + 1):
        page = caffelog.process_level(lv, log_dir)
        if page is not None:
            shutil.copyfile(page, out / f"loss_level{lv}.png")


def figures(out: Path, levels: int) -> list[str]:
    """The figure lines of the README, for the files in `out`."""
    lines = [f"- `level{lv}_test.png`: per-point error histograms after level {lv}" for lv in range(1, levels + 1)]
    lines += ["- `examples.png`: test faces, truth green, prediction red"]
    lines += [f"- `loss_level{lv}.png`: Caffe training and test loss per net" for lv in range(1, levels + 1)
              if (out / f"loss_level{lv}.png").is_file()]
    if (out / "nets" / "README.md").is_file():
        lines += ["- `nets/`: diagrams of the nets, drawn by Caffe's `caffe.draw` (`python -m model.draw`)"]
    return lines


def error_tables(results: dict[str, dict], others: dict[str, dict] | None = None) -> list[str]:
    """This project's mean errors and failure rates beside the published ones; `others`: the
    same evaluation another way ({"no mirroring": summaries, ...}), a row per level each."""
    head = "| | " + " | ".join(POINTS) + " |\n|---|" + "---|" * len(POINTS)
    others = others or {}

    def rows(measure: str) -> list[str]:
        out = [_row(f"**this project, {result_name(lv)}**", [100 * s[p][measure] for p in POINTS])
               for lv, s in results.items()]
        out += [_row(f"this project, {result_name(lv)}, {how}", [100 * s[p][measure] for p in POINTS])
                for how, summaries in others.items() for lv, s in summaries.items() if lv != "F1"]
        return out

    lines = ["## Mean error, % of box width", "", head, *rows("mean_error")]
    lines += [_row(k, v) for k, v in PUBLISHED.items()]
    lines += ["", "## Failure rate, %", "", head, *rows("failure_rate")]
    lines += [_row(k, v) for k, v in PUBLISHED_FAILURES.items()]
    lines += ["", "Mean over the five points: " + ", ".join(
        f"{result_name(lv)} {100 * s['mean_error']:.2f}% (failures {100 * s['failure_rate']:.2f}%)"
        for lv, s in results.items())]
    for how, summaries in others.items():
        top = max(k for k in summaries if k != "F1")
        last = summaries[top]
        lines += ["", f"This project, {how}: level {top} "
                      f"{100 * last['mean_error']:.2f}% (failures {100 * last['failure_rate']:.2f}%, "
                      f"{last['faces']} faces)."]
    return lines


def render(result: Evaluation, list_name: str, model: Path, secs: float, budget: list[str],
           figure_lines: list[str], others: dict[str, dict] | None = None) -> str:
    """The report's markdown."""
    n, levels = len(result.faces), len(result.predictions)
    lines = [
        "# Evaluation on the CUHK test split",
        "",
        f"{n} faces of `{list_name}`, model `{rel(model)}`, written by `python -m common.report` "
        f"on {time.strftime('%Y-%m-%d')}. Error = distance to the true point / face box width; "
        f"failure = error > {FAILURE:.2f}. Rows in bold: the cascade as `predict` and the web app "
        "run it, with test-time mirroring, on the listed face boxes; \"no mirroring\": the paper's "
        f"cascade; \"{DEFAULT_DETECTOR} boxes\": on the boxes the face detector and its box rule place "
        "(faces it misses left out).",
        "",
        *error_tables(result.summaries, others),
        "", f"Inference: {n} faces through {levels} levels in {secs:.1f} s "
            f"({n / secs:.0f} faces/s, image loading included) on {_machine()}.", ""]
    if budget:
        lines += ["## Training budget", "",
                  f"Machine: {_machine()}; one single-threaded `caffe train` per core.", "",
                  "| net | iterations | wall time, min | iter/s (last) | last train loss | last test loss |",
                  "|---|---|---|---|---|---|", *budget, ""]
    lines += ["## Figures", "", *figure_lines]
    lines += ["", "## Reproduce", "", "```",
              f"./bootstrap.sh --data DIR            # set-up, data, training of all {len(NETS)} nets, this report",
              "python -m common.report --model model/released --detector-boxes   # this report, for a model folder",
              "python -m common.evaluate --level 3 [--no-mirror] [--boxes detector]  # the tables alone",
              "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help=f"data set folder (default ${DATA_ENV} or dataset/train/)")
    p.add_argument("--model", type=Path, help=MODEL_HELP)
    p.add_argument("--out", type=Path, default=RESULT_DIR)
    p.add_argument("--log-dir", type=Path, default=LOG_DIR)
    p.add_argument("--limit", type=int, help="only the first N test faces")
    p.add_argument("--detector-boxes", action="store_true",
                   help=f"also evaluate on the {DEFAULT_DETECTOR} detector's boxes (about 5 minutes on the test split)")
    args = p.parse_args(argv)
    log_to_console()
    try:
        readme = write_report(args.data, resolve_model(args.model), args.out, args.log_dir, args.limit,
                              args.detector_boxes)
    except (DataMissing, ListFileError, FileNotFoundError, ModelMissing) as exc:
        sys.exit(f"error: {exc}")
    print(readme.read_text())
    print(f"report: {rel(readme)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
