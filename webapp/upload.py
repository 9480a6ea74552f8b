"""Decoding an uploaded photo safely, in memory.

The header is read first (Pillow opens lazily): the format must be one we accept and the
pixel count under the limit before a single pixel is decoded, so a tiny file that claims
30000x30000 pixels (a decompression bomb) is refused without decoding it. Large JPEGs are
decoded at a reduced scale (DCT scaling), other large images shrunk after decoding; the caller
maps results back to the original pixels with `factor`. EXIF orientation is applied, so
coordinates refer to the photo as browsers show it.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ACCEPTED = ("JPEG", "PNG", "BMP", "WEBP", "GIF", "TIFF")
ACCEPTED_TEXT = "JPEG, PNG, BMP, WebP, GIF or TIFF"
# Leading bytes of the accepted formats: a file that starts like one but cannot be opened is
# damaged, not "not an image".
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"GIF8": "GIF",
              b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}
# Orientations (EXIF tag 0x0112) that swap width and height.
TRANSPOSED = {5, 6, 7, 8}
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


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


def _to_array(img: Image.Image) -> np.ndarray:
    """8-bit BGR (colour is kept for the face detector), or gray for 16-bit/float images."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit/float: stretch to 8 bits
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        return ((arr - lo) * (255.0 / (hi - lo)) if hi > lo else arr * 0).astype(np.uint8)
    return cv2.cvtColor(np.asarray(img.convert("RGB"), dtype=np.uint8), cv2.COLOR_RGB2BGR)


def decode_upload(data: bytes, max_pixels: int, work_side: int = 2048) -> Decoded:
    """The upload as 8-bit BGR at most `work_side` pixels on its longer side; BadImage for
    anything unusable."""
    if not data:
        raise BadImage("the uploaded file is empty")
    img = _open(data)
    w, h = img.size
    if w * h > max_pixels:
        raise BadImage(f"image is {w}x{h} pixels, over the limit of {max_pixels / 1e6:g} "
                       "megapixels; refused without decoding")
    fmt = img.format
    try:
        orientation = img.getexif().get(0x0112, 1)
    except DECODE_ERRORS:
        orientation = 1
    if orientation in TRANSPOSED:
        w, h = h, w
    scale = min(1.0, work_side / max(w, h))
    fx = fy = 1.0
    src = img
    try:
        if fmt == "JPEG" and scale < 1.0:
            # Decode at 1/2, 1/4 or 1/8 directly (DCT scaling); draft keeps at least the size
            # asked for, and the reduction is exactly a power of two.
            iw, ih = img.size
            img.draft("RGB", (max(1, int(iw * scale)), max(1, int(ih * scale))))
            fx = fy = float(2 ** round(np.log2(iw / img.size[0])))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            img = ImageOps.exif_transpose(img)
            pixels = _to_array(img)
    except DECODE_ERRORS as exc:
        raise BadImage(f"corrupt or truncated {fmt} image: {exc}") from None
    finally:
        src.close()
        img.close()
    rows, cols = pixels.shape[:2]
    if max(rows, cols) > work_side:
        s = work_side / max(rows, cols)
        size = (max(1, round(cols * s)), max(1, round(rows * s)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        fx, fy = fx * cols / size[0], fy * rows / size[1]
    return Decoded(np.ascontiguousarray(pixels), w, h, fmt, fx, fy)
