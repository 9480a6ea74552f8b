"""The library logs; a command's main() shows the log as print would have."""
from __future__ import annotations

import logging

from common.console import log_to_console


def test_progress_on_stdout_warnings_on_stderr_once(capsys):
    log = logging.getLogger("dataset.example")
    log.info("not shown: nothing configured")
    log_to_console()
    log_to_console()  # a second call replaces the handlers, it does not double the lines
    log.info("3 nets written")
    logging.getLogger("common.example").warning("warning: fell back")
    out, err = capsys.readouterr()
    assert out == "3 nets written\n"
    assert err == "warning: fell back\n" and "not shown" not in out + err
    for name in ("common", "dataset", "model", "webapp"):  # leave other tests' loggers as they were
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)
