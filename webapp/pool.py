"""The processes that do the CPU work of the web service: one per core, each with the model
loaded once, taking uploads one at a time from one shared queue (a free process takes the next
request, so none idles while another has a backlog).

The HTTP side (granian, webapp/asgi.py) only reads whole requests and waits for answers here:
a slow client holds a cheap coroutine, never one of these processes. A process that spends
longer than `timeout` on one upload (time waiting in the queue does not count) ends itself,
with a traceback in the server's log, and multiprocessing starts a new one in its place; that
upload's request gets Busy (503), the others are not disturbed.
"""
from __future__ import annotations

import faulthandler
import math
import multiprocessing as mp
import os
import threading
import time

from webapp import analyse

_timeout = 0.0  # this pool process's limit per upload
GRACE = 5.0     # seconds a request waits past its worst-case time before it gives up


class Busy(RuntimeError):
    """A model process stopped before answering (HTTP 503)."""


def default_processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _process_start(model, detector, timeout: float) -> None:
    """A pool process leaves the server's process group: a signal to the group (Ctrl-C, or
    `kill -- -PGID`) must not kill it while it waits for work holding the queue's lock, or the
    pool's own shutdown waits for that lock forever. The server stops it on its way out; should
    the server die without doing so, it notices and exits."""
    global _timeout
    os.setsid()
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()
    _timeout = timeout
    analyse.load(model, detector)


def _guarded(fn, args):
    """fn(*args), the process ended (from a C-level watchdog thread, so even inside a native
    call that never returns) if it takes longer than the timeout."""
    faulthandler.dump_traceback_later(_timeout, exit=True)
    try:
        return fn(*args)
    finally:
        faulthandler.cancel_dump_traceback_later()


class Pool:
    def __init__(self, processes: int, model=None, detector=None, timeout: float = 30.0,
                 max_tasks: int = 2000):
        self.processes, self.timeout = processes, timeout
        # spawn: the server process runs threads (forking it could copy a held lock).
        self._pool = mp.get_context("spawn").Pool(
            processes, initializer=_process_start, initargs=(model, detector, timeout),
            maxtasksperchild=max_tasks)
        self._lock = threading.Lock()
        self._waiting = 0

    def call(self, fn, *args):
        """fn(*args) in a pool process; its exception is raised here. Busy when no answer can
        come any more: a process that runs over the timeout ends itself and its task is lost,
        so a request waits at most as long as every upload ahead of it and its own could take."""
        with self._lock:
            self._waiting += 1
            rounds = math.ceil(self._waiting / self.processes)
        try:
            return self._pool.apply_async(_guarded, (fn, args)).get(rounds * self.timeout + GRACE)
        except mp.TimeoutError:
            raise Busy(f"the photo took longer than {self.timeout:g} s") from None
        finally:
            with self._lock:
                self._waiting -= 1
