"""Caffe log parsing: a real log from this session's training, and synthetic snippets (NaN,
explosion, resumed runs); CSV and PNG output."""
from __future__ import annotations

import csv
import math
import re
import shutil
from dataclasses import replace

import pytest

from common import caffelog
from conftest import TRAIN_ITERS, run_module, save_artifact
from model.config import settings_for

PNG = b"\x89PNG\r\n\x1a\n"

NAN_LOG = """\
I1128 09:00:00.000001  7070 solver.cpp:239] Iteration 0 (-4.5e+23 iter/s, 0.135s/100 iters), loss = 1.52029
I1128 09:00:00.000002  7070 solver.cpp:258]     Train net output #0: loss = 1.52029 (* 1 = 1.52029 loss)
I1128 09:00:00.000003  7070 sgd_solver.cpp:112] Iteration 0, lr = 1e+06
I1128 09:00:03.000001  7070 solver.cpp:239] Iteration 100 (27.86 iter/s, 3.589s/100 iters), loss = 0.25
I1128 09:00:03.000003  7070 sgd_solver.cpp:112] Iteration 100, lr = 1e+06
I1128 09:00:05.000001  7070 solver.cpp:347] Iteration 200, Testing net (#0)
I1128 09:00:05.100000  7070 solver.cpp:414]     Test net output #0: loss = -nan (* 1 = -nan loss)
I1128 09:00:05.200000  7070 solver.cpp:239] Iteration 200 (31.5 iter/s, 3.17s/100 iters), loss = nan
I1128 09:00:05.200003  7070 sgd_solver.cpp:112] Iteration 200, lr = 1e+06
"""


def test_real_log(tmp_path, trained_level1):
    src = trained_level1.log_dir / "1_F1.log"
    text = src.read_text()
    rows = caffelog.parse(text)
    its = [r.iteration for r in rows]
    assert its == sorted(its) and its[0] == 0 and its[-1] == TRAIN_ITERS
    train = {r.iteration: r.train_loss for r in rows if r.train_loss is not None}
    assert set(train) == set(range(0, TRAIN_ITERS + 1, 50))  # --quick: display every 50
    assert all(math.isfinite(v) and v > 0 for v in train.values())
    # values as Caffe printed them
    first = re.search(r"Iteration 0 \([^)]*\), loss = (\S+)", text).group(1)
    assert train[0] == float(first)
    final = re.search(rf"Iteration {TRAIN_ITERS}, loss = (\S+)", text).group(1)
    assert train[TRAIN_ITERS] == float(final)
    tests = {r.iteration: r.test_loss for r in rows if r.test_loss is not None}
    assert set(tests) == {100, 200, 300}
    printed = [float(v) for v in re.findall(r"Test net output #0: loss = (\S+)", text)]
    assert [tests[i] for i in sorted(tests)] == printed
    # multistep schedule of model/config.py, scaled to the run's length
    settings = replace(settings_for(1), max_iter=TRAIN_ITERS)
    lrs = {r.iteration: r.lr for r in rows if r.lr is not None}
    assert lrs and set(lrs) <= set(train)
    for it, lr in lrs.items():
        want = settings.base_lr * settings.gamma ** sum(it >= s for s in settings.stepvalues)
        assert lr == pytest.approx(want, rel=1e-6), (it, lr)
    assert caffelog.diverged(rows) is None
    speed = caffelog.last_speed(text)
    assert speed is not None and speed > 0

    log = tmp_path / "1_F1.log"
    shutil.copyfile(src, log)
    assert caffelog.process(log) == rows
    with open(log.with_suffix(".csv"), newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows)
    assert [int(r["iteration"]) for r in table] == its
    for r, row in zip(table, rows):
        if row.train_loss is not None:
            assert float(r["train_loss"]) == pytest.approx(row.train_loss, rel=1e-7)
        else:
            assert r["train_loss"] == ""
    png = log.with_suffix(".png")
    assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5000
    save_artifact(png, "1_F1_loss.png")


def test_cli_writes_csv_and_png(tmp_path, trained_level1):
    for name in ("1_F1.log", "1_EN1.log"):
        shutil.copyfile(trained_level1.log_dir / name, tmp_path / name)
    proc = run_module("common.caffelog", tmp_path / "1_F1.log")
    assert "rows" in proc.stdout
    assert (tmp_path / "1_F1.csv").is_file() and (tmp_path / "1_F1.png").read_bytes()[:8] == PNG
    # a whole level: one page with every net that has a log
    proc = run_module("common.caffelog", "--level", "1", "--log-dir", tmp_path)
    page = tmp_path / "level1.png"
    assert page.read_bytes()[:8] == PNG
    assert (tmp_path / "1_EN1.csv").is_file()
    assert not (tmp_path / "1_NM1.csv").exists()
    missing = run_module("common.caffelog", tmp_path / "nope.log", check=False)
    assert missing.returncode != 0 and "no such log" in missing.stderr


def test_nan_snippet(tmp_path):
    rows = caffelog.parse(NAN_LOG)
    assert [r.iteration for r in rows] == [0, 100, 200]
    assert rows[0].train_loss == 1.52029 and rows[0].lr == 1e6
    assert rows[1].train_loss == 0.25 and rows[1].test_loss is None
    assert math.isnan(rows[2].train_loss) and math.isnan(rows[2].test_loss)
    why = caffelog.diverged(rows)
    assert why is not None and "nan" in why and "iteration 200" in why
    assert caffelog.diverged(rows[:2]) is None
    assert caffelog.last_speed(NAN_LOG) == 31.5
    # CSV keeps the NaN (a NaN is data, not a gap); the plot leaves it out and is still written
    caffelog.write_csv(rows, tmp_path / "nan.csv")
    table = list(csv.DictReader(open(tmp_path / "nan.csv", newline="")))
    assert table[2]["train_loss"].lower() == "nan" and table[1]["test_loss"] == ""
    caffelog.plot(rows, tmp_path / "nan.png", "nan")
    assert (tmp_path / "nan.png").read_bytes()[:8] == PNG


def test_summary_of_a_log():
    """What the report's budget table and the release manifest read from a log."""
    rows = caffelog.parse(NAN_LOG)
    assert math.isnan(caffelog.last_loss(rows))  # the last one logged, NaN or not
    assert caffelog.last_loss(rows[:2]) == 0.25 and caffelog.last_loss(rows[:2], test=True) is None
    assert caffelog.last_loss([]) is None
    s = caffelog.summarise(NAN_LOG)
    assert s.iterations == 200 and s.speed == 31.5 and s.wall_seconds == pytest.approx(5.200002, abs=1e-6)
    assert math.isnan(s.train_loss) and math.isnan(s.test_loss)
    # progress lines with their glog time: 09:00:03 on the 28th, in seconds since the 1st
    assert caffelog.stamp_seconds("no stamp") is None
    start = (28 * 24 + 9) * 3600.0
    assert caffelog.iteration_times(NAN_LOG) == [(0, pytest.approx(start + 1e-6)),
                                                 (100, pytest.approx(start + 3.000001)),
                                                 (200, pytest.approx(start + 5.2))]
    # glog 0.6 (the set-up's Caffe) writes the year too
    assert caffelog.stamp_seconds("I20261128 09:00:03.000001 5109 solver.cpp:239] x") == pytest.approx(start + 3.000001)
    year_log = re.sub(r"^([IWEF])(\d{4} )", r"\g<1>2026\2", NAN_LOG, flags=re.M)
    assert year_log != NAN_LOG
    assert caffelog.summarise(year_log).wall_seconds == pytest.approx(5.200002, abs=1e-6)
    empty = caffelog.summarise("")
    assert (empty.iterations, empty.train_loss, empty.speed, empty.wall_seconds) == (0, None, None, 0.0)


def test_explosion_and_resume_snippets():
    big = "I1128 solver.cpp:239] Iteration 50 (30 iter/s, 1s/50 iters), loss = 5e+03\n"
    assert "5000" in caffelog.diverged(caffelog.parse(big))
    assert caffelog.diverged(caffelog.parse(big), limit=1e4) is None
    inf = "I1128 solver.cpp:327] Iteration 60, loss = inf\n"
    assert caffelog.diverged(caffelog.parse(inf)) is not None
    # a resumed run repeats iterations: the later value wins
    resumed = ("I1128 solver.cpp:239] Iteration 100 (30 iter/s, 1s/50 iters), loss = 0.5\n"
               "# deep-landmark: caffe train --snapshot=x_iter_80.solverstate\n"
               "I1128 solver.cpp:239] Iteration 100 (30 iter/s, 1s/50 iters), loss = 0.4\n")
    rows = caffelog.parse(resumed)
    assert len(rows) == 1 and rows[0].train_loss == 0.4
