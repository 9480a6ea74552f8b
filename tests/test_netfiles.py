"""Net file locations, which levels a model folder holds, and which model folder a command uses."""
from __future__ import annotations

import shutil

import pytest

from common.netfiles import (MODEL_ENV, default_model, deploy_files, hdf5_dir, levels_available, missing_nets,
                             net_dir, resolve_model)
from common.nets import NETS, by_name, of_level
from common.paths import HDF5_DIR, MODEL_DIR, RELEASED_MODEL


def test_file_locations():
    spec = by_name("LE21")
    assert net_dir(spec) == MODEL_DIR / "2_LE21"
    assert deploy_files(spec, "x") == (net_dir(spec, "x") / "deploy.prototxt", net_dir(spec, "x") / "weights.caffemodel")
    assert hdf5_dir(spec) == HDF5_DIR / "2_LE21"


def test_levels_count_only_complete_levels(tmp_path):
    for spec in NETS:
        if spec.level <= 2:
            shutil.copytree(net_dir(spec, RELEASED_MODEL), net_dir(spec, tmp_path))
    assert levels_available(tmp_path) == 2 and missing_nets(tmp_path, 2) == []
    assert missing_nets(tmp_path, 3) == [s.key for s in of_level(3)]
    # a level with one net short does not count, nor do the levels above it
    deploy_files(by_name("EN1"), tmp_path)[1].unlink()
    assert levels_available(tmp_path) == 0 and missing_nets(tmp_path, 1) == ["1_EN1"]


def test_model_folder_choice(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert resolve_model() == default_model()
    assert default_model() in (MODEL_DIR, RELEASED_MODEL)
    assert resolve_model(tmp_path / "given") == tmp_path / "given"
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "env"))
    assert resolve_model() == tmp_path / "env"
    assert resolve_model(tmp_path / "given") == tmp_path / "given"
    # the training steps keep to the nets being trained, whatever the environment names
    assert resolve_model(trained_here=True) == MODEL_DIR
    assert resolve_model(tmp_path / "given", trained_here=True) == tmp_path / "given"


@pytest.mark.parametrize("command", ["common.evaluate", "common.report", "common.predict"])
def test_commands_name_the_same_default(command):
    from conftest import run_module
    help_text = " ".join(run_module(command, "--help").stdout.split())
    assert f"${MODEL_ENV}, else model/ when it holds all 3 levels, else model/released/" in help_text
