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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def load_image(path: str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB with EXIF orientation applied; fully decoded so truncation is caught here."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB")).copy()
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: cannot read image: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"{path}: cannot read image: {e}") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header only."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: cannot read image: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"{path}: cannot read image: {e}") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
