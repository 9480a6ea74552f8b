"""Decoding an uploaded photo safely, in memory.

The header is read first (Pillow opens lazily): the format must be one we accept and the
pixel count under the limit before a single pixel is decoded, so a tiny file that claims
30000x30000 pixels (a decompression bomb) is refused without decoding it. Large JPEGs are
decoded at a reduced scale (DCT scaling), other large images shrunk after decoding; the caller
maps results back to the original pixels with `factor`. EXIF orientation is applied, so
coordinates refer to the photo as browsers show it. A JPEG whose scan data ends before its
header's size is filled (libjpeg fills the rest with grey and says nothing) is refused as
truncated; one that lacks only its end marker, which browsers show, is accepted.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from common.image import to_8bit

ACCEPTED = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF")
ACCEPTED_TEXT = "JPEG, PNG, BMP, WebP, GIF or TIFF"
# Leading bytes of the accepted formats: a file that starts like one but cannot be opened is
# damaged, not "not an image".
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"GIF8": "GIF",
              b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
# Orientations (EXIF tag 0x0112) that swap width and height.
TRANSPOSED = {5, 6, 7, 8}
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)
EOI = b"\xff\xd9"
SOS, DRI = 0xDA, 0xDD
# Bytes put where a JPEG scan's data ends to see whether the decoder reads them (no 0xFF, so
# no marker; mixed bits, so they decode as coefficients rather than as invalid codes).
FILLER = bytes(range(1, 255)) * 2


class BadImage(ValueError):
    """An upload we cannot use; the message is for the user (HTTP 400)."""


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray  # uint8 BGR (gray for 16-bit and float images), possibly shrunk
    width: int        # of the photo itself (after EXIF orientation)
    height: int
    format: str
    fx: float = 1.0   # original pixels per pixel of `image`, across
    fy: float = 1.0   # and down


def _scan_ends(data: bytes) -> list[tuple[int, bytes]]:
    """Where each scan's data of a JPEG ends (the index of the marker after it, or len(data)
    when the file stops inside it), with the restart marker due next when the scan uses
    restart intervals (between intervals the decoder skips anything but that marker), else b"". Marker segments are skipped by their lengths (an EXIF thumbnail
    holds markers of its own); inside scan data 0xFF is followed only by 0x00 or a restart
    marker, so the first other marker ends the scan. Parsing stops at anything that does not
    look like a JPEG: the decoder judges those."""
    ends, i, restarts = [], 2, False
    while i + 4 <= len(data) and data[i] == 0xFF:
        kind = data[i + 1]
        if kind == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if kind == EOI[1]:
            break
        if kind == DRI:
            restarts = int.from_bytes(data[i + 4:i + 6], "big") > 0
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if kind != SOS:
            continue
        due = 0xD0
        while True:
            i = data.find(b"\xff", i)
            if i < 0 or i + 1 >= len(data):
                ends.append((len(data), bytes([0xFF, due]) if restarts else b""))
                return ends
            if 0xD0 <= data[i + 1] <= 0xD7:
                due = 0xD0 + (data[i + 1] - 0xD0 + 1) % 8
            elif data[i + 1] != 0:
                ends.append((i, bytes([0xFF, due]) if restarts else b""))
                break
            i += 2
    return ends


def _tiny(data: bytes) -> tuple[np.ndarray, tuple[int, int]] | None:
    """A JPEG decoded at 1/8 scale (DCT scaling: cheap even for large photos, though every
    coefficient is still read) and its full size; None when it cannot be decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=("JPEG",)) as img:
                size = img.size
                img.draft(None, (1, 1))
                return np.asarray(img), size
    except DECODE_ERRORS + (Image.DecompressionBombError,):
        return None


def _complete_jpeg(data: bytes) -> bytes:
    """The JPEG with its end marker (added when only that is missing); BadImage when a scan's
    data ends early. libjpeg, on running out of scan data, fills the rest of the image with grey
    without an error (a 250x250 photo whose header says 7000x7000 decodes as a grey 7000x7000),
    so the test is direct: decode it as it is and again with FILLER put where each scan's data
    ends. A complete scan never reads past its own end, so both agree; a short one reads the
    filler as more pixels. At 1/8 scale only the DC coefficients show, so a progressive JPEG
    whose later (detail) scans are cut passes, drawn coarser, as browsers draw it."""
    ends = _scan_ends(data)
    whole = data + EOI if ends and ends[-1][0] == len(data) else data
    probe, start = [], 0
    for end, restart in ends:
        # Filler first for a scan cut inside an interval, then (with restarts) the marker due
        # and filler again for one cut between intervals.
        probe += [data[start:end], FILLER] + ([restart, FILLER] if restart else [])
        start = end
    probe.append(whole[start:])
    plain, probed = _tiny(whole), _tiny(b"".join(probe))
    if plain is not None and probed is not None and not np.array_equal(plain[0], probed[0]):
        w, h = plain[1]
        raise BadImage(f"corrupt or truncated JPEG image: it holds less image data than the "
                       f"{w}x{h} pixels its header says")
    return whole


def _signature(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for sig, fmt in SIGNATURES.items() if data.startswith(sig)), None)


def _format_name(data: bytes) -> str | None:
    """What Pillow's full plugin list calls this file (header only, nothing decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as img:
                return img.format
    except Exception:  # any failure here just means "not an image we know"
        return None


def _open(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=ACCEPTED)
    except Image.DecompressionBombError:
        raise BadImage("image dimensions too large (a decompression bomb?); refused "
                       "without decoding") from None
    except UnidentifiedImageError:
        sig = _signature(data)
        if sig:
            raise BadImage(f"corrupt or truncated {sig} image: its header cannot be read") from None
        other = _format_name(data)
        if other:
            raise BadImage(f"unsupported image format {other}; send {ACCEPTED_TEXT}") from None
        raise BadImage(f"not an image (or not one in a format read here: {ACCEPTED_TEXT})") from None
    except DECODE_ERRORS as exc:
        raise BadImage(f"corrupt or truncated image: {exc}") from None


HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I", "F")
# Modes Pillow's reduce() works on; others become RGB first (palette, 1-bit) or go through numpy
# (16-bit).
REDUCIBLE = ("L", "RGB", "RGBA", "I", "F", "LA", "CMYK")
# Orientations (EXIF tag 0x0112) as Pillow transposes.
ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
          4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
          6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _shrunk_array(img: Image.Image, work_side: int) -> np.ndarray:
    """The decoded image at most about `work_side` pixels on its longer side, as 8-bit BGR (gray
    for 16-bit and float images). It is shrunk in its own mode before anything is converted, so
    memory stays near the decoded image's own size (a 7000x7000 16-bit PNG: 98 MB decoded, not
    a gigabyte of float64)."""
    k = max(1, -(-max(img.size) // work_side))  # integer reduction factor, rounded up
    if img.mode in ("I;16", "I;16B", "I;16L"):  # Pillow cannot reduce these: numpy, 2 bytes a pixel
        arr = np.asarray(img)
        if k > 1:
            arr = cv2.resize(arr, (max(1, arr.shape[1] // k), max(1, arr.shape[0] // k)),
                             interpolation=cv2.INTER_AREA)
        return to_8bit(arr)
    if img.mode not in REDUCIBLE:
        img = img.convert("RGB")
    if k > 1:
        img = img.reduce(k)
    if img.mode in HIGH_DEPTH:
        return to_8bit(np.asarray(img))
    return cv2.cvtColor(np.asarray(img.convert("RGB"), dtype=np.uint8), cv2.COLOR_RGB2BGR)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except DECODE_ERRORS:
        return 1


def _oriented(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels turned as the EXIF orientation says (as browsers show the photo)."""
    if orientation not in ORIENT:
        return pixels
    turned = Image.fromarray(np.ascontiguousarray(pixels)).transpose(ORIENT[orientation])
    return np.asarray(turned)


def decode_upload(data: bytes, max_pixels: int, work_side: int = 2048) -> Decoded:
    """The upload as 8-bit BGR at most `work_side` pixels on its longer side; BadImage for
    anything unusable."""
    if not data:
        raise BadImage("the uploaded file is empty")
    if _signature(data) == "JPEG":
        data = _complete_jpeg(data)
    img = _open(data)
    w, h = img.size
    if w * h > max_pixels:
        raise BadImage(f"image is {w}x{h} pixels, over the limit of {max_pixels / 1e6:g} "
                       "megapixels; refused without decoding")
    fmt = img.format
    scale = min(1.0, work_side / max(w, h))
    src = img
    try:
        if fmt == "JPEG" and scale < 1.0:
            # Decode at 1/2, 1/4 or 1/8 directly (DCT scaling); draft keeps at least the size
            # asked for.
            iw, ih = img.size
            img.draft("RGB", (max(1, int(iw * scale)), max(1, int(ih * scale))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            # Read after loading: Pillow turns TIFFs itself (their size is already upright and
            # the tag is gone once loaded); other formats keep it for us to apply.
            orientation = _orientation(img)
            pixels = _oriented(_shrunk_array(img, work_side), orientation)
    except DECODE_ERRORS as exc:
        raise BadImage(f"corrupt or truncated {fmt} image: {exc}") from None
    finally:
        src.close()
        img.close()
    if orientation in TRANSPOSED:
        w, h = h, w
    rows, cols = pixels.shape[:2]
    if max(rows, cols) > work_side:
        s = work_side / max(rows, cols)
        pixels = cv2.resize(pixels, (max(1, round(cols * s)), max(1, round(rows * s))),
                            interpolation=cv2.INTER_AREA)
    # Photo pixels per pixel of the copy (the copy spans the whole photo).
    fx, fy = w / pixels.shape[1], h / pixels.shape[0]
    return Decoded(np.ascontiguousarray(pixels), w, h, fmt, fx, fy)
