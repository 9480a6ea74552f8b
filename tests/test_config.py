"""model/config.py and model/generate.py: command-line overrides reach the rendered solver."""
from __future__ import annotations

import re

from conftest import run_module


def _solver_value(text: str, key: str) -> str:
    return re.search(rf"^{key}: (\S+)", text, re.M).group(1).strip('"')


def test_overrides_reach_the_solver(tmp_path):
    run_module("model.generate", "--nets", "F1", "LE21", "--model-root", tmp_path, "--iters", 1000,
               "--lr", 0.002, "--weight-decay", 0.0001, "--batch", 32, "--solver-type", "SGD")
    for key in ("1_F1", "2_LE21"):
        solver = (tmp_path / key / "solver.prototxt").read_text()
        assert _solver_value(solver, "max_iter") == "1000"
        assert float(_solver_value(solver, "base_lr")) == 0.002
        assert float(_solver_value(solver, "weight_decay")) == 0.0001
        assert _solver_value(solver, "type") == "SGD"
        # steps at 60% and 85% of the run
        assert re.findall(r"^stepvalue: (\d+)", solver, re.M) == ["600", "850"]
        train = (tmp_path / key / "train.prototxt").read_text()
        assert "batch_size: 32" in train


def test_default_jobs_share_the_cores_out_evenly():
    from model.train import default_jobs
    assert default_jobs(3, cores=2) == 3    # level 1: all three at once, no core idles at the end
    assert default_jobs(10, cores=2) == 2   # levels 2-3: five rounds of two
    assert default_jobs(4, cores=2) == 2
    assert default_jobs(2, cores=2) == 2
    assert default_jobs(5, cores=4) == 5
    assert default_jobs(9, cores=4) == 4
