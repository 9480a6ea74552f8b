"""Load test of the web service on loopback: many concurrent clients POST sample photos to
/api/landmarks for a bounded time; prints requests/s, p50 and p99 latency, and errors.

    .venv/bin/python benchmarks/webapp_load.py [--clients 16] [--seconds 20] [--workers 3]
    .venv/bin/python benchmarks/webapp_load.py --url http://127.0.0.1:8000   # a running server

Without --url it starts the production server itself (webapp/run.sh, gunicorn) on a free port
and stops it afterwards.
"""
from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from webapp import launch  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "sample"


def multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def client(host: str, port: int, bodies, until: float, out: list, errors: list, seed: int) -> None:
    rng = np.random.default_rng(seed)
    while time.time() < until:
        body, ctype = bodies[rng.integers(len(bodies))]
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request("POST", "/api/landmarks", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            payload = resp.read()
            conn.close()
            if resp.status != 200 or "faces" not in json.loads(payload):
                errors.append(f"HTTP {resp.status}")
                continue
        except (OSError, http.client.HTTPException, ValueError) as exc:
            errors.append(type(exc).__name__)
            continue
        out.append(time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start webapp/run.sh on a free port)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=3, help="gunicorn workers of the server it starts")
    ap.add_argument("--model", help="model folder for the server it starts")
    ap.add_argument("--photos", type=int, default=50, help="sample photos to send")
    args = ap.parse_args()

    names = [line.split()[0] for line in (SAMPLE / "testImageList.txt").read_text().splitlines() if line.strip()]
    bodies = [multipart((SAMPLE / n).read_bytes(), Path(n).name) for n in names[:args.photos]]
    proc = None
    if args.url:
        url = args.url
    else:
        proc, url = launch.start(args.workers, args.model)
    try:
        parsed = urlparse(url)
        latencies: list[float] = []
        errors: list[str] = []
        until = time.time() + args.seconds
        threads = [threading.Thread(target=client, args=(parsed.hostname, parsed.port or 80, bodies, until,
                                                          latencies, errors, i)) for i in range(args.clients)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
    finally:
        if proc is not None:
            launch.stop(proc)
    ms = np.array(latencies) * 1000
    summary = {"url": url, "clients": args.clients, "seconds": round(elapsed, 1), "ok": len(latencies),
               "errors": len(errors), "requests_per_s": round(len(latencies) / elapsed, 2),
               "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
               "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None}
    if not args.url:
        summary["workers"] = args.workers
    print(f"{summary['clients']} clients, {summary['seconds']} s: {summary['requests_per_s']} requests/s, "
          f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, {summary['ok']} ok, "
          f"{summary['errors']} errors" + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))
    print(json.dumps(summary))
    return 0 if latencies else 1


if __name__ == "__main__":
    sys.exit(main())
