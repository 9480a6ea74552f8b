"""Training beyond this machine's cores: the Slurm script `model.train --slurm` writes, and
`--gpu` reaching Caffe (one id or a list: one process per GPU).

No Slurm and no GPU here, so: the Slurm script is checked by bash -n, submitted to a stand-in
`sbatch` that records what it is asked (the dependency chain is read from that), and its steps
are run for real where this machine can (level-1 data step, one array task trained by the real
Caffe). For --gpu the rendered solver is checked, and model.train drives a stand-in `caffe`
that records its command line and solver, so the processes and GPUs it is given are checked.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common import nets as nettable
from common.paths import SAMPLE_DATA
from conftest import run_module
from model import train as model_train


@pytest.mark.caffe
def test_slurm_script_names_every_net_once_and_chains_the_levels(tmp_path, level1_hdf5):
    hdf5 = tmp_path / "hdf5"
    shutil.copytree(level1_hdf5, hdf5)
    script = tmp_path / "slurm" / "train.sh"
    model_root, logs = tmp_path / "model", tmp_path / "log"
    run_module("model.train", "--slurm", script, "--data", SAMPLE_DATA, "--model-root", model_root,
               "--hdf5-root", hdf5, "--log-dir", logs, "--result-dir", tmp_path / "result",
               "--quick", "--iters", 20, "--sbatch", "--partition=test --time=0:30:00")
    text = script.read_text()
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    for spec in nettable.NETS:
        assert len(re.findall(rf"(?<![\w]){spec.key}(?![\w])", text)) == 1, spec.key

    # Submitted to a stand-in sbatch that records each call and answers a job id.
    bin_dir, calls = tmp_path / "bin", tmp_path / "sbatch.jsonl"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(f"#!{sys.executable}\n"
                    "import json, os, sys\n"
                    "log = os.environ['SBATCH_LOG']\n"
                    "n = sum(1 for _ in open(log)) if os.path.exists(log) else 0\n"
                    "open(log, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                    "print(f'{1001 + n};testcluster')\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SBATCH_LOG=str(calls))
    sub = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert sub.returncode == 0, sub.stderr
    jobs = [json.loads(line) for line in calls.read_text().splitlines()]
    expected = []
    for level in (1, 2, 3):
        expected += [("data", str(level), None), ("train", str(level), f"0-{len(nettable.of_level(level)) - 1}")]
    expected.append(("report", None, None))
    assert len(jobs) == len(expected)
    for i, (argv, (step, level, array)) in enumerate(zip(jobs, expected)):
        at = argv.index(str(script.resolve()))
        options, step_args = argv[:at], argv[at + 1:]
        assert step_args == [step] + ([level] if level else [])
        assert "--parsable" in options and "--partition=test" in options and "--time=0:30:00" in options
        deps = [o for o in options if o.startswith("--dependency=")]
        # Each job waits for the one submitted before it: data L+1 for the whole array of level L.
        assert deps == ([f"--dependency=afterok:{1000 + i}"] if i else [])
        arrays = [o.split("=", 1)[1] for o in options if o.startswith("--array=")]
        assert arrays == ([array] if array else [])
    assert "level 3: data job 1005, training array 1006 (10 nets)" in sub.stdout

    # Steps run for real: the level-1 data step (its data is there: it says so and skips), then
    # array task 1 of level 1, which must train the second net of the table and nothing else.
    data = subprocess.run(["bash", str(script), "data", "1"], capture_output=True, text=True, timeout=300)
    assert data.returncode == 0, data.stderr
    assert (model_root / "1_F1" / "solver.prototxt").is_file() and "complete, skipped" in data.stdout
    task = subprocess.run(["bash", str(script), "train", "1"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, SLURM_ARRAY_TASK_ID="1"))
    assert task.returncode == 0, task.stdout + task.stderr
    second = nettable.of_level(1)[1].key
    trained = sorted(p.parent.name for p in model_root.glob("*/weights.caffemodel"))
    assert trained == [second]
    assert "max_iter: 20" in (model_root / second / "solver.prototxt").read_text()
    assert (logs / f"{second}.log").is_file()
    assert subprocess.run(["bash", str(script), "train", "1"], capture_output=True).returncode != 0  # no task id
    assert subprocess.run(["bash", str(script), "nonsense"], capture_output=True).returncode == 2


def test_slurm_script_with_gpu_asks_each_task_for_one(tmp_path):
    script = tmp_path / "train.sh"
    run_module("model.train", "--slurm", script, "--data", SAMPLE_DATA, "--gpu", "0,1")
    text = script.read_text()
    train_line = next(line for line in text.splitlines() if "--array=" in line)
    assert "--gres=gpu:1" in train_line
    # Inside its allocation a task's GPU is number 0 (Slurm sets CUDA_VISIBLE_DEVICES).
    assert re.search(r"-m model\.train .*\n.* --gpu 0\n", text)
    bad = run_module("model.train", "--slurm", script, "--data", tmp_path / "nothing", check=False)
    assert bad.returncode == 1 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def _solver_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(solver_mode|device_id): (\S+)", text, re.M))


def test_gpu_reaches_the_solver(tmp_path):
    run_module("model.generate", "--nets", "F1", "--model-root", tmp_path / "gpu", "--gpu", "1")
    assert _solver_lines((tmp_path / "gpu" / "1_F1" / "solver.prototxt").read_text()) == \
        {"solver_mode": "GPU", "device_id": "1"}
    run_module("model.generate", "--nets", "F1", "--model-root", tmp_path / "cpu")
    assert _solver_lines((tmp_path / "cpu" / "1_F1" / "solver.prototxt").read_text()) == {"solver_mode": "CPU"}
    for bad in ("0,x", "1,1", "-1"):
        proc = run_module("model.generate", "--nets", "F1", "--model-root", tmp_path, f"--gpu={bad}", check=False)
        assert proc.returncode == 2 and "GPU" in proc.stderr and "Traceback" not in proc.stderr


FAKE_CAFFE = """#!{python}
# Stands in for a GPU build of `caffe train`: records its arguments, the solver it was given and
# when it ran, then leaves the final snapshot a finished run leaves.
import json, os, re, sys, time
from pathlib import Path
args = sys.argv[1:]
solver = Path(next(a.split("=", 1)[1] for a in args if a.startswith("--solver="))).read_text()
prefix = re.search(r'^snapshot_prefix: "(.*)"', solver, re.M).group(1)
iters = re.search(r"^max_iter: (\\d+)", solver, re.M).group(1)
start = time.time()
time.sleep(1.0)
for suffix in ("caffemodel", "solverstate"):
    Path(f"{{prefix}}_iter_{{iters}}.{{suffix}}").write_bytes(b"stand-in")
group = Path("/proc/self/autogroup")
autogroup = int(group.read_text().split()[-1]) if group.exists() else None
with open(os.environ["FAKE_CAFFE_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "solver": solver, "start": start, "end": time.time(),
                          "nice": os.getpriority(os.PRIO_PROCESS, 0), "autogroup": autogroup}}) + "\\n")
"""


def train_level1_with_fake_caffe(tmp_path, level1_hdf5, monkeypatch, *flags) -> tuple[int, list[dict]]:
    """model.train --level 1 --quick FLAGS driving FAKE_CAFFE: the exit code and what each
    stand-in process recorded."""
    caffe = tmp_path / "caffe"
    caffe.write_text(FAKE_CAFFE.format(python=sys.executable))
    caffe.chmod(0o755)
    runs = tmp_path / "runs.jsonl"
    monkeypatch.setenv("FAKE_CAFFE_LOG", str(runs))
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        code = model_train.main(["--level", "1", *flags, "--quick", "--model-root", str(tmp_path / "model"),
                                 "--hdf5-root", str(level1_hdf5), "--log-dir", str(tmp_path / "log"),
                                 "--progress-every", "100"], caffe=str(caffe))
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    return code, [json.loads(line) for line in runs.read_text().splitlines()] if runs.exists() else []


def test_gpu_list_one_caffe_process_per_gpu(tmp_path, level1_hdf5, monkeypatch, capsys):
    code, records = train_level1_with_fake_caffe(tmp_path, level1_hdf5, monkeypatch, "--gpu", "0,1")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2 at a time, on GPU 0,1" in out
    keys = [re.search(r"model/(\d_\w+)/solver", " ".join(r["args"])).group(1) for r in records]
    assert sorted(keys) == sorted(s.key for s in nettable.of_level(1))
    by_gpu: dict[str, list] = {}
    for r in records:
        assert r["args"][0] == "train"
        gpus = [a.split("=", 1)[1] for a in r["args"] if a.startswith("--gpu")]
        assert len(gpus) == 1 and gpus[0] in ("0", "1"), r["args"]  # one id per process, never a list
        assert _solver_lines(r["solver"]) == {"solver_mode": "GPU", "device_id": gpus[0]}
        by_gpu.setdefault(gpus[0], []).append((r["start"], r["end"]))
    assert sorted(by_gpu) == ["0", "1"]
    for spans in by_gpu.values():  # one process at a time on each GPU
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    for spec in nettable.of_level(1):
        assert (tmp_path / "model" / spec.key / "weights.caffemodel").read_bytes() == b"stand-in"


def test_level1_on_two_cores_f1_keeps_a_core(tmp_path, level1_hdf5, monkeypatch, capsys):
    """Three level-1 processes on two cores: F1 (the most work) at full priority, EN1 and NM1 at
    a lower one, each in its process and its scheduling group."""
    monkeypatch.setattr(model_train.os, "cpu_count", lambda: 2)
    code, runs = train_level1_with_fake_caffe(tmp_path, level1_hdf5, monkeypatch)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 at a time" in out and "1_F1 keeps a core (the most work); 1_EN1, 1_NM1 share" in out
    records = {re.search(r"model/(\d_\w+)/solver", " ".join(r["args"])).group(1): r for r in runs}
    base = os.getpriority(os.PRIO_PROCESS, 0)
    expected = {"1_F1": 0, "1_EN1": model_train.SHARED_CORE_NICE, "1_NM1": model_train.SHARED_CORE_NICE}
    for key, nice in expected.items():
        assert records[key]["nice"] == min(19, base + nice)
        if records[key]["autogroup"] is not None and nice:
            assert records[key]["autogroup"] == nice
    spans = sorted((r["start"], r["end"]) for r in records.values())
    assert spans[2][0] < spans[0][1]   # all three at once
    assert "nice 10" in (tmp_path / "log" / "1_EN1.log").read_text()
    assert "nice" not in (tmp_path / "log" / "1_F1.log").read_text()


def test_core_shares_only_when_processes_outnumber_cores():
    from model.config import SolverSettings
    from types import SimpleNamespace
    def trainer(name, iters):
        return SimpleNamespace(spec=nettable.by_name(name), settings=SolverSettings(max_iter=iters))
    level1 = [trainer("F1", 50000), trainer("EN1", 50000), trainer("NM1", 50000)]
    assert model_train.core_shares(level1, jobs=3, cores=2) == {"1_F1": 0, "1_EN1": 10, "1_NM1": 10}
    # EN1 given twice the iterations is the most work now
    longer = [trainer("F1", 50000), trainer("EN1", 100000), trainer("NM1", 50000)]
    assert model_train.core_shares(longer, jobs=3, cores=2) == {"1_F1": 10, "1_EN1": 0, "1_NM1": 10}
    level2 = [trainer(n, 40000) for n in ("LE21", "LE22", "RE21", "RE22")]
    assert set(model_train.core_shares(level2, jobs=2, cores=2).values()) == {0}
    assert set(model_train.core_shares(level1, jobs=3, cores=4).values()) == {0}


@pytest.mark.parametrize("flags", [["--level", "1"], ["--nets", "F1"]])
def test_slurm_does_not_mix_with_a_level(tmp_path, flags):
    proc = run_module("model.train", "--slurm", tmp_path / "x.sh", *flags, check=False)
    assert proc.returncode == 2 and "--slurm" in proc.stderr and not (tmp_path / "x.sh").exists()


def test_slurm_script_passes_random_init_to_the_training_tasks(tmp_path):
    for extra, expected in (([], False), (["--random-init"], True)):
        script = tmp_path / "train.sh"
        run_module("model.train", "--slurm", script, "--data", SAMPLE_DATA, *extra)
        text = script.read_text()
        train_call = re.search(r"-m model\.train --nets .*\n.*\n", text).group(0)
        generate_call = next(line for line in text.splitlines() if "-m model.generate" in line)
        assert ("--random-init" in train_call) == expected
        assert "--random-init" not in generate_call
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_slurm_script_passes_the_loss_to_generate_and_train(tmp_path):
    script = tmp_path / "train.sh"
    run_module("model.train", "--slurm", script, "--data", SAMPLE_DATA, "--loss", "distance")
    text = script.read_text()
    train_call = re.search(r"-m model\.train --nets .*\n.*\n", text).group(0)
    generate_call = next(line for line in text.splitlines() if "-m model.generate" in line)
    assert "--loss distance" in train_call and "--loss distance" in generate_call
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
