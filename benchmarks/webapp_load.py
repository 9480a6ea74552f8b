"""Load test of the web service on loopback, as it is served (webapp/run.sh): 640x480 photos with
one face, first one request at a time (latency and the server's CPU time per request), then
many concurrent clients for a bounded time (requests/s, p50/p95/p99 latency, errors). Each
answer must hold the photo's face (its points within 10% of the face width of the truth);
anything else counts as an error.

    .venv/bin/python benchmarks/webapp_load.py [--clients 8] [--seconds 30] [--workers N]
    .venv/bin/python benchmarks/webapp_load.py --url http://127.0.0.1:8000   # a running server

The photos are made from the committed sample's test faces (tests/data/sample/): each face,
upright, 100-220 px wide, pasted through a feathered round mask on a background tiled from
faceless pieces of other test images (benchmarks/wild.py's), saved as JPEG.

Target (issue 9): with as many model processes as cores and 8 clients, requests/s at least 80%
of cores / (server CPU seconds per request), p99 at most 3x p50, no errors. Without --url the
server is started here (on a free port; --workers default: one per core) and its CPU time is
read from /proc; with --url only latencies and requests/s are measured.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from benchmarks.wild import Backgrounds, round_mask
from common.listfile import read_list
from common.nets import POINTS
from common.paths import SAMPLE_DATA, TEST_LIST
from tools import webapp_server as launch
from webapp.pool import default_processes

CANVAS = (640, 480)
FACE_PX = (100.0, 220.0)  # face box widths drawn uniformly
FOUND = 0.10              # an answer holds the face when its points are this close (box widths)


def photos(count: int, seed: int = 0) -> list[tuple[bytes, np.ndarray, float]]:
    """(JPEG bytes, true points (5, 2), true box width) for `count` 640x480 one-face photos."""
    samples = read_list(SAMPLE_DATA / TEST_LIST)
    backgrounds = Backgrounds(samples)
    out = []
    for i, sample in enumerate(samples[:count]):
        rng = np.random.default_rng([seed, i])
        face = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
        image = backgrounds.canvas(rng, sample.image_path, *CANVAS)
        size = float(rng.uniform(*FACE_PX))
        scale = size / sample.box.width
        side = int(min(2.2 * size, CANVAS[1] - 1)) | 1
        cx, cy = sample.box.center
        ox = int(rng.integers(0, CANVAS[0] - side + 1))
        oy = int(rng.integers(0, CANVAS[1] - side + 1))
        # Source -> canvas: scale about the face centre, which lands at the patch's centre.
        m = np.array([[scale, 0, ox + side / 2 - scale * cx], [0, scale, oy + side / 2 - scale * cy]])
        patch = cv2.warpAffine(face, m, CANVAS, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        alpha = np.zeros(CANVAS[::-1], np.float32)
        alpha[oy:oy + side, ox:ox + side] = round_mask(side)
        image = (alpha[..., None] * patch + (1 - alpha[..., None]) * image + 0.5).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append((jpeg.tobytes(), sample.points @ m[:, :2].T + m[:, 2], size))
    return out


def holds_face(answer: dict, truth: np.ndarray, width: float) -> bool:
    for face in answer.get("faces", []):
        pts = np.array([face["points"][p] for p in POINTS])
        if np.linalg.norm(pts - truth, axis=1).mean() < FOUND * width:
            return True
    return False


def send(host: str, port: int, body: bytes, ctype: str) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request("POST", "/api/landmarks", body=body, headers={"Content-Type": ctype})
        resp = conn.getresponse()
        payload = resp.read()
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}")
    return json.loads(payload)


def timed(host, port, item, latencies: list, errors: list) -> None:
    body, ctype, truth, width = item
    t0 = time.perf_counter()
    try:
        answer = send(host, port, body, ctype)
    except (OSError, http.client.HTTPException, ValueError, RuntimeError) as exc:
        errors.append(str(exc) or type(exc).__name__)
        return
    if not holds_face(answer, truth, width):
        errors.append("answer without the photo's face")
        return
    latencies.append(time.perf_counter() - t0)


def cpu_seconds(root: int) -> dict:
    """User + system CPU seconds of the live processes of the server (`root` and everything it
    started): the model's processes (multiprocessing's spawned ones) and the rest (granian,
    the app)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick,
                                     Path(f"/proc/{entry}/cmdline").read_bytes())
            except OSError:
                continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, (ppid, _, _) in stats.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    total = {"model": 0.0, "front": 0.0}
    for pid in tree & stats.keys():
        _, cpu, cmdline = stats[pid]
        total["model" if b"multiprocessing" in cmdline else "front"] += cpu
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = os.times()
    return usage.user + usage.system


def cpu_between(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in before}


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)} if len(ms) else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start webapp/run.sh on a free port)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the concurrent phase")
    ap.add_argument("--workers", type=int, default=default_processes(),
                    help="model processes of the server it starts (default: one per core)")
    ap.add_argument("--model", help="model folder for the server it starts")
    ap.add_argument("--photos", type=int, default=40, help="different photos to send")
    ap.add_argument("--single", type=int, default=2, help="rounds over the photos one at a time")
    ap.add_argument("--json", help="also write the summary to this file")
    args = ap.parse_args()

    items = []
    for jpeg, truth, width in photos(args.photos):
        body, ctype = launch.multipart(jpeg, "photo.jpg")
        items.append((body, ctype, truth, width))
    proc = None
    if args.url:
        url = args.url
    else:
        print(f"starting webapp/run.sh with {args.workers} model processes", file=sys.stderr)
        proc, url = launch.start(args.workers, args.model, extra=["--skip-setup"])
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or 80
    try:
        # Warm-up: every process answers its first photos slowly (lazy set-up).
        warm_errors: list[str] = []
        threads = [threading.Thread(target=timed, args=(host, port, items[i % len(items)], [], warm_errors))
                   for i in range(2 * args.workers)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        # One request at a time: latency, and the server's CPU time per request.
        single, single_errors = [], []
        cpu0 = cpu_seconds(proc.pid) if proc else None
        t0 = time.perf_counter()
        for _ in range(args.single):
            for item in items:
                timed(host, port, item, single, single_errors)
        single_wall = time.perf_counter() - t0
        single_cpu = cpu_between(cpu0, cpu_seconds(proc.pid)) if proc else None
        # Concurrent clients, each sending photos one after another until time is up.
        latencies: list[float] = []
        errors: list[str] = []
        until = time.time() + args.seconds

        def client(seed: int) -> None:
            rng = np.random.default_rng(seed)
            while time.time() < until:
                timed(host, port, items[int(rng.integers(len(items)))], latencies, errors)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        cpu0 = cpu_seconds(proc.pid) if proc else None
        busy0, own0 = machine_busy(), own_cpu()
        t0 = time.perf_counter()
        [t.start() for t in threads]
        [t.join() for t in threads]
        elapsed = time.perf_counter() - t0
        load_cpu = cpu_between(cpu0, cpu_seconds(proc.pid)) if proc else None
        busy, own = machine_busy() - busy0, own_cpu() - own0
    finally:
        if proc is not None:
            launch.stop(proc)

    rps = len(latencies) / elapsed
    load = {"clients": args.clients, "seconds": round(elapsed, 1), "ok": len(latencies), "errors": len(errors),
            "requests_per_s": round(rps, 2), **percentiles(latencies)}
    summary = {"url": url, "photos": f"{len(items)} x {CANVAS[0]}x{CANVAS[1]} JPEG, one face each",
               "single": {"requests": len(single), "errors": len(single_errors), **percentiles(single),
                          "mean_ms": round(1000 * float(np.mean(single)), 1) if single else None,
                          "requests_per_s": round(len(single) / single_wall, 2)},
               "load": load, "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(f"one at a time: {len(single)} requests, p50 {summary['single'].get('p50_ms')} ms, "
          f"mean {summary['single']['mean_ms']} ms, {len(single_errors)} errors")
    print(f"{args.clients} clients, {load['seconds']} s: {load['requests_per_s']} requests/s, "
          f"p50 {load.get('p50_ms')} ms, p95 {load.get('p95_ms')} ms, p99 {load.get('p99_ms')} ms, "
          f"{load['ok']} ok, {load['errors']} errors" + (f" ({'; '.join(sorted(set(errors)))})" if errors else ""))
    passed = True
    if single_cpu is not None:
        cpu = sum(single_cpu.values()) / (len(single) + len(single_errors))
        ideal = args.workers / cpu
        checks = {"requests/s >= 80% of cores / CPU per request": rps >= 0.8 * ideal,
                  "p99 <= 3 x p50": bool(latencies) and load["p99_ms"] <= 3 * load["p50_ms"],
                  "no errors": not errors and not single_errors}
        passed = all(checks.values())
        # The cores' worth of CPU the server got while loaded: on a machine shared with other
        # work it gets less than `workers`, and requests/s falls with it.
        got = sum(load_cpu.values()) / elapsed
        others = max(0.0, (busy - own) / elapsed - got)
        summary["target"] = {"cpu_ms_per_request": round(1000 * cpu, 1),
                             "front_cpu_ms_per_request": round(1000 * single_cpu["front"] / len(items) / args.single, 1),
                             "workers": args.workers, "ideal_requests_per_s": round(ideal, 2),
                             "ratio": round(rps / ideal, 3), "cores_obtained_under_load": round(got, 2),
                             "cores_used_by_this_client": round(own / elapsed, 2),
                             "cores_used_by_other_work": round(others, 2),
                             "ratio_to_cpu_obtained": round(rps * cpu / got, 3) if got else None,
                             "checks": checks, "passed": passed}
        print(f"server CPU {1000 * cpu:.1f} ms per request (front {summary['target']['front_cpu_ms_per_request']} ms); "
              f"{args.workers} processes could do {ideal:.2f} requests/s; measured {rps / ideal:.0%} of that")
        print(f"under load the server got {got:.2f} cores' worth of CPU: {rps * cpu / got:.0%} of what that allows "
              f"(this client used {own / elapsed:.2f} cores, other work on the machine {others:.2f})")
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print(f"load average {summary['load_average']} (other work on the machine slows the concurrent phase)")
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if latencies and passed else 1


if __name__ == "__main__":
    sys.exit(main())
