"""The per-image job: one photo in, its faces as the JSON dict `predict --json` prints. `predict`
runs it on the files it is given; the photo collections run it in worker processes
(common/collection.py) or Ray actors (common/cluster.py), each of which holds its own
Landmarker (`start_worker`) and turns every image into one line (`image_line`).
"""
from __future__ import annotations

from pathlib import Path

import cv2

from common.draw import draw_faces
from common.landmarker import make_landmarker


class Unreadable(Exception):
    """A file that cannot be read or written as an image or video; the message says why."""


def do_image(path: Path, landmarker, out: Path | None, align: int | None = None) -> dict:
    """The faces of the photo at `path` (`align`: with each face's aligned-crop matrix); with
    `out`, the photo with its faces drawn written there, and with `align` their crops beside it."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise Unreadable("not an image OpenCV can read")
    faces = landmarker(image)
    result = {"file": str(path), "width": image.shape[1], "height": image.shape[0],
              "faces": [f.as_dict(align=align) for f in faces]}
    if out is not None:
        cv2.imwrite(str(out), draw_faces(image, faces))
        result["written"] = str(out)
        if align is not None:
            result["crops"] = write_crops(image, faces, align, out)
    return result


def write_crops(image, faces, size: int, out: Path) -> list[str]:
    """Each face's aligned crop beside the drawn image: <name>.face<i>.png, i from 1 as in the
    printed list and on the web page."""
    paths = []
    for i, face in enumerate(faces, 1):
        path = out.with_name(f"{out.stem}.face{i}.png")
        cv2.imwrite(str(path), face.aligned(image, size)[0])
        paths.append(str(path))
    return paths


# --- in a worker process or actor --------------------------------------------------------------
_landmarker = None


def start_worker(options: dict) -> None:
    """Give this process its own Landmarker (make_landmarker `options`), on one core."""
    global _landmarker
    cv2.setNumThreads(1)  # one process per core
    _landmarker = make_landmarker(**options, warn=lambda m: None)


def image_line(name: str, read_from: str | None = None) -> dict:
    """The JSON line of one image, by this worker's Landmarker. `read_from`: where this worker
    finds the file when that is not `name` (a cluster worker gets an absolute path); the line
    always says `name`."""
    path = Path(read_from or name)
    try:
        if not path.is_file():
            raise Unreadable("no such file")
        result = do_image(path, _landmarker, None)
    except Unreadable as exc:
        result = {"file": name, "error": str(exc)}
    except Exception as exc:  # one odd file must not stop a run over 100,000 photos
        result = {"file": name, "error": f"{type(exc).__name__}: {exc}"}
    result["file"] = name
    return result
