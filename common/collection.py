"""Photo collections: five points for every image under folders, one JSON line per image,
streamed to a file as it goes, on every core (`python -m common.predict DIR... --jsonl FILE`).

- Folders are walked recursively (images only, by extension; in sorted order); files named on
  the command line are taken as they are.
- Each line is what `predict --json` gives for one image, or {"file", "error"} for a file that
  cannot be read: counted and reported, never fatal.
- One process per core (--workers), each with its own detector and cascade; the parent only
  writes lines. Nothing is held in memory but the list of paths. The same per-image function
  (common/imagejob.py) runs on a Ray cluster instead with --engine ray (common/cluster.py).
- Re-running with the same output file skips the images it already holds, so an interrupted run
  loses nothing (a half-written last line is dropped and that image done again).
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import AbstractContextManager, contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator

from common.imagejob import image_line, start_worker

# An engine: (images to do, workers, make_landmarker options) -> a context that holds an
# iterator of their lines, in finishing order.
Engine = Callable[..., AbstractContextManager]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"}


def walk(inputs: Iterable[str]) -> Iterator[Path]:
    """Image files under the folders (recursively, sorted) and the files named, once each."""
    seen = set()
    for name in inputs:
        path = Path(name)
        found = (sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
                 if path.is_dir() else [path])
        for p in found:
            if p not in seen:
                seen.add(p)
                yield p


def already_done(out: Path) -> set[str]:
    """Files the output already holds a line for. A last line cut off mid-write (an interrupted
    run) is removed from the file so that image is done again."""
    if not out.is_file():
        return set()
    done = set()
    with open(out, "rb+") as fh:
        good_end = 0
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                done.add(json.loads(raw)["file"])
            except (ValueError, KeyError, TypeError):
                break
            good_end += len(raw)
        fh.truncate(good_end)
    return done


@contextmanager
def pool_results(todo: list[str], workers: int | None, options: dict) -> Iterator[Iterator[dict]]:
    """The local engine: one spawned process per core (or `workers`), lines in finishing order."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    with get_context("spawn").Pool(workers, start_worker, (options,)) as pool:
        yield pool.imap_unordered(image_line, todo, chunksize=1)


def run(inputs: Iterable[str], out: Path, workers: int | None, options: dict,
        progress: bool = True, engine: Engine = pool_results) -> dict:
    """Process every image not yet in `out`; returns counts. `options` go to make_landmarker;
    `engine` runs the per-image function over the images (the local pool, or
    common.cluster.ray_results) and yields their lines as they finish."""
    from tqdm import tqdm
    done = already_done(out)
    todo = [str(p) for p in walk(inputs) if str(p) not in done]
    counts = {"skipped": len(done), "images": 0, "faces": 0, "unreadable": 0}
    if not todo:
        return counts
    out.parent.mkdir(parents=True, exist_ok=True)
    # The engine first: one that cannot start (Ray missing) leaves no file behind.
    with engine(todo, workers, options) as results, open(out, "a", encoding="utf-8") as fh, \
            tqdm(total=len(todo), unit="image", file=sys.stderr, disable=not progress,
                 dynamic_ncols=True, mininterval=1.0) as bar:
        for result in results:
            fh.write(json.dumps(result) + "\n")
            fh.flush()
            if "error" in result:
                counts["unreadable"] += 1
            else:
                counts["images"] += 1
                counts["faces"] += len(result["faces"])
            bar.update(1)
    return counts
