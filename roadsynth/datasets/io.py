"""Atomic writes and image loading.

Nothing roadsynth writes is ever half-written: data goes to a temp file in the target folder, is
fsynced, then `os.replace`d over the target (atomic on POSIX), and the folder entry is fsynced.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageLoadError(ValueError):
    """An image file is missing, unreadable or truncated (the message names the file)."""


TEMP_PREFIX = ".roadsynth-"  # every temp file roadsynth writes starts so; only such files are ever swept


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs must be readable like any other file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def jsonable(obj: Any) -> Any:
    """A JSON-safe deep copy: numpy scalars become Python numbers, tuples lists, anything else its str."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file's content; a missing or broken file is a ValueError/FileNotFoundError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise ValueError(f"{path}: not valid JSON: {why} ({what})") from None


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> None:
    # Serialise first: an object that cannot be encoded must not touch the existing file.
    separators = (",", ":") if indent is None else (",", ": ")
    atomic_write_text(path, json.dumps(obj, indent=indent, separators=separators, ensure_ascii=False) + "\n")


def encode_image(rgb: np.ndarray, suffix: str, quality: int = 95) -> bytes:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 uint8, but got shape {rgb.shape} dtype {rgb.dtype}")
    buf = io.BytesIO()
    suffix = suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    elif suffix == ".png":
        Image.fromarray(rgb).save(buf, format="PNG")
    else:
        raise ValueError(f"image suffix must be .jpg, .jpeg or .png, but got {suffix!r}")
    return buf.getvalue()


def save_image_atomic(path: str | Path, rgb: np.ndarray, quality: int = 95) -> None:
    path = Path(path)
    atomic_write_bytes(path, encode_image(rgb, path.suffix, quality))


MAX_PIXELS = 100_000_000  # default limit on one image: a 100-megapixel frame is no road camera's


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if max_pixels is not None and w * h > max_pixels:
        raise ImageLoadError(f"{path}: image is {w}x{h} ({w * h / 1e6:.0f} megapixels), over the limit of "
                             f"{max_pixels / 1e6:.0f} megapixels (`max_image_pixels`)")


def _to_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """8-bit RGB from any common mode; 16-bit greyscale is scaled down (Pillow's convert would clip it white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageLoadError(f"{path}: {im.mode} image with values outside 0-65535: not an image roadsynth can use")
        g = (arr // 257).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode == "F":
        raise ImageLoadError(f"{path}: floating-point image (mode F): convert it to 8 or 16 bits first")
    return np.asarray(im.convert("RGB")).copy()


def load_image(path: str | Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """HxWx3 uint8 RGB with EXIF orientation applied; fully decoded so truncation is caught here. Images over
    `max_pixels`, degenerate ones and unusable modes are refused with the reason (ImageLoadError)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            _check_pixels(path, im.size, max_pixels)
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im, path)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: cannot read image: file not found") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: refused: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"{path}: cannot read image: {e}") from None


def image_size(path: str | Path, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header only (limits checked as in `load_image`)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            _check_pixels(path, (w, h), max_pixels)
            orientation = im.getexif().get(0x0112, 1)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: cannot read image: file not found") from None
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: refused: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"{path}: cannot read image: {e}") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


class UnsafePathError(ValueError):
    """A path read from a data file that would lead outside the folder it must stay in."""


def inside(root: str | Path, rel: str | Path, what: str) -> Path:
    """`root / rel`, refused when `rel` is absolute or climbs out of `root` with `..` (checked lexically, so
    links a user or roadsynth placed inside `root` still work). `what` names the record in the error."""
    rel = str(rel).replace("\\", "/")
    if not rel or rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePathError(f"{what}: path {rel!r} is absolute; it must be relative to {root}")
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith("../"):
        raise UnsafePathError(f"{what}: path {rel!r} leads outside {root}")
    return Path(root) / norm
