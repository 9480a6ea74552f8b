"""What the commands show on the console of the library's progress and warnings.

The library reports through `logging` (one logger per module, named after it: "dataset.build",
"common.landmarker"), never `print`, so code that imports it (the web app, tests) can silence
or capture it. Each command's main() calls `log_to_console()`: progress then appears on stdout
and warnings on stderr as plain lines, as `print` showed them. Without it, Python shows the
warnings alone, on stderr.
"""
from __future__ import annotations

import logging
import sys

# The project's top-level packages: their loggers are the ones shown.
PACKAGES = ("common", "dataset", "model", "webapp")


class _ConsoleHandler(logging.StreamHandler):
    """Marks the handlers added here, so that a second call replaces them."""


def log_to_console(level: int = logging.INFO) -> None:
    """Show the project's log records from `level` up: below WARNING on stdout, the rest on
    stderr, each as its bare message."""
    progress = _ConsoleHandler(sys.stdout)
    progress.addFilter(lambda record: record.levelno < logging.WARNING)
    problems = _ConsoleHandler(sys.stderr)
    problems.setLevel(logging.WARNING)
    for handler in (progress, problems):
        handler.setFormatter(logging.Formatter("%(message)s"))
    for name in PACKAGES:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
            logger.removeHandler(old)
        logger.addHandler(progress)
        logger.addHandler(problems)
        logger.setLevel(level)
