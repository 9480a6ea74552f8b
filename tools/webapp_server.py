"""Start the production server (webapp/run.sh) on a free loopback port and stop it: for the
server and browser tests and the load benchmark, which must exercise what a user runs."""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from common.paths import ROOT


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def start(workers: int = 2, model: str | None = None, extra: list[str] | None = None,
          log: Path | None = None, wait: float = 90.0) -> tuple[subprocess.Popen, str]:
    """(process, base URL) once /healthz answers 200; ServerFailed with the log's tail if not.
    The server runs in its own process group, so stop() ends granian and the model's processes."""
    port = free_port()
    cmd = ["bash", str(ROOT / "webapp" / "run.sh"), "--port", str(port), "--workers", str(workers),
           *(["--model", model] if model else []), *(extra or [])]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def tail() -> str:
        return Path(log).read_text()[-3000:] if log else "(no log kept)"

    deadline = time.time() + wait
    while not healthy(port):
        if proc.poll() is not None:
            raise ServerFailed(f"webapp/run.sh exited with {proc.returncode}:\n{tail()}")
        if time.time() > deadline:
            stop(proc)
            raise ServerFailed(f"server not healthy after {wait:.0f} s:\n{tail()}")
        time.sleep(0.5)
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def multipart(data: bytes, filename: str, field: str = "image", fields: dict | None = None) -> tuple[bytes, str]:
    """(body, Content-Type) of a multipart form holding one file and optional text fields."""
    boundary = uuid.uuid4().hex
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
             for name, value in (fields or {}).items()]
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
