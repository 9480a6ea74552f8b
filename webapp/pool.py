"""The processes that do the CPU work of the web service: one per core, each with the model
loaded once, taking uploads one at a time from one shared queue (a free process takes the next
request, so none idles while another has a backlog).

The HTTP side (granian, webapp/asgi.py) only reads whole requests and waits for answers here:
a slow client holds a cheap coroutine, never one of these processes. A process that dies is
replaced by multiprocessing; one that takes longer than `timeout` on an upload gets the whole
pool restarted, as a worker timeout would.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading

from webapp import analyse


def _process_start(model, detector) -> None:
    """A pool process leaves the server's process group: a signal to the group (Ctrl-C, or
    `kill -- -PGID`) must not kill it while it waits for work holding the queue's lock, or the
    pool's own shutdown waits for that lock forever. The server stops it on its way out, and
    it exits by itself when the server's end of the queue closes."""
    os.setsid()
    analyse.load(model, detector)


class Busy(RuntimeError):
    """An upload took longer than the timeout (HTTP 503)."""


def default_processes() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Pool:
    def __init__(self, processes: int, model=None, detector=None, timeout: float = 30.0,
                 max_tasks: int = 2000):
        self.processes, self.timeout = processes, timeout
        self._args = (model, detector)
        self._max_tasks = max_tasks
        # spawn: the server process runs threads (forking it could copy a held lock).
        self._ctx = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self):
        return self._ctx.Pool(self.processes, initializer=_process_start, initargs=self._args,
                              maxtasksperchild=self._max_tasks)

    def call(self, fn, *args, timeout: float | None = None):
        """fn(*args) in a pool process; its exception is raised here. Busy after the timeout."""
        pool = self._pool
        pending = pool.apply_async(fn, args)
        try:
            return pending.get(self.timeout if timeout is None else timeout)
        except mp.TimeoutError:
            self._restart(pool)
            raise Busy(f"the photo took longer than {self.timeout:g} s") from None

    def _restart(self, stuck) -> None:
        """A new pool for the stuck one (unless another request already replaced it); requests
        still waiting on the old one end with Busy at their own timeouts."""
        with self._lock:
            if self._pool is stuck:
                stuck.terminate()
                self._pool = self._start()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()
