"""Photo collections on Ray (`predict --jsonl --engine ray`, common/cluster.py), for real in
Ray's local mode: the same JSON lines as the local process pool on the committed sample.

Ray is an optional extra. ./test.sh installs it (scripts/setup.sh --cluster) and sets
DEEP_LANDMARK_CLUSTER_EXTRA, so there these tests always run; elsewhere they skip without it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from common import predict
from common.paths import SAMPLE_DATA
from conftest import run_module

pytestmark = pytest.mark.cluster


def need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("DEEP_LANDMARK_CLUSTER_EXTRA"):
            pytest.fail("ray is not installed, yet ./test.sh installs it (scripts/setup.sh --cluster)")
        pytest.skip("the optional Ray extra is not installed (scripts/setup.sh --cluster)")


def processes_mentioning(text: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if d.name.isdigit() and text in cmd:
            found.append(f"{d.name}: {cmd[:120]}")
    return found


def lines_by_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    by_file = {json.loads(line)["file"]: line for line in lines}
    assert len(by_file) == len(lines), "an image was written twice"
    return by_file


def test_ray_local_mode_gives_the_pool_lines_on_the_sample(tmp_path):
    """The whole sample (400 photos) and a corrupt file, on 2 processes and on 2 Ray actors:
    the same lines, byte for byte (order aside). --upright on both keeps it short and checks
    that the options reach the Ray workers (the rotation search finds more faces)."""
    need_ray()
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a picture")
    inputs = [SAMPLE_DATA, junk]
    pool_out, ray_out = tmp_path / "pool.jsonl", tmp_path / "ray.jsonl"
    run_module("common.predict", *inputs, "--jsonl", pool_out, "--workers", 2, "--upright", timeout=300)

    # Ray's session files under a short folder of our own (its socket paths must stay under 107
    # characters), so what it leaves behind is removed and its processes can be found.
    ray_tmp = tempfile.mkdtemp(prefix="dlray-")
    try:
        proc = run_module("common.predict", *inputs, "--jsonl", ray_out, "--workers", 2, "--upright",
                          "--engine", "ray", timeout=300, env={"RAY_TMPDIR": ray_tmp})
        deadline = time.time() + 15  # the command has ended; its Ray processes follow it
        while processes_mentioning(ray_tmp) and time.time() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(ray_tmp) == [], "Ray was not shut down"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert "400 images" in proc.stderr and "1 unreadable" in proc.stderr

    pool, ray = lines_by_file(pool_out), lines_by_file(ray_out)
    assert len(pool) == 401
    assert sorted(ray) == sorted(pool)
    different = [name for name in pool if ray[name] != pool[name]]
    assert different == [], f"{len(different)} lines differ, first {different[:1]}"
    assert "error" in json.loads(ray[str(junk)])
    faces = sum(len(json.loads(line).get("faces", [])) for line in ray.values())
    assert faces >= 390

    # Done already: a re-run finds nothing to do and starts no Ray at all.
    again = run_module("common.predict", *inputs, "--jsonl", ray_out, "--engine", "ray")
    assert "401 already in" in again.stderr and ray_out.read_text().count("\n") == 401


def test_ray_engine_without_the_extra_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` fails
    one = sorted((SAMPLE_DATA / "lfw_5590").glob("*.jpg"))[0]
    code = predict.main([str(one), "--jsonl", str(tmp_path / "out.jsonl"), "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 1 and "scripts/setup.sh --cluster" in err and "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def test_engine_flags_go_with_jsonl(tmp_path):
    one = sorted((SAMPLE_DATA / "lfw_5590").glob("*.jpg"))[0]
    for extra, said in ((["--engine", "ray"], "--engine goes with --jsonl"),
                        (["--jsonl", tmp_path / "a.jsonl", "--address", "auto"],
                         "--address goes with --engine ray")):
        proc = run_module("common.predict", one, *extra, check=False)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr
