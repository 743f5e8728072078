"""Atomic writes, and the readers of every file a user or a run folder hands roadsynth.

Nothing roadsynth writes is ever half-written: data goes to a temp file in the target folder, is
fsynced, then `os.replace`d over the target (atomic on POSIX), and the folder entry is fsynced. A write
that fails says which file and what was being done (`FileOpError`: "cannot write x.jpg: no space left on
device"), not just the errno.

Reads open regular files only (`open_input`): a FIFO or a device named like a JSON file would block forever
or never end, so anything else is refused, from a stat taken before opening. A parsed document is held to
limits before anything walks it:

- YAML (configs, data.yaml): at most `MAX_YAML_BYTES` (1 MiB) of file, `MAX_YAML_NODES` (1,000,000) nodes
  once aliases are expanded and `MAX_DEPTH` (100) levels of nesting. Aliases are counted on the composed
  node graph, without expanding it, so a few hundred bytes that expand to 387 million nodes (a "billion
  laughs") are refused in milliseconds.
- JSON (annotation files, run folders): at most `MAX_JSON_BYTES` (2 GiB), `MAX_JSON_NODES` (200,000,000)
  values and `MAX_DEPTH` levels. JSON has no aliases, so its size bounds its values; the limits stop files
  that would exhaust memory or the recursion of a walk, while COCO's own train2017 file (448 MB) passes.

Every reader takes `max_bytes` / `max_nodes` / `max_depth` to set another limit for one call.
"""

from __future__ import annotations

import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import yaml
from PIL import Image, ImageOps, UnidentifiedImageError


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

MAX_DEPTH = 100  # COCO files nest 6 levels, configs fewer than 10
MAX_YAML_BYTES = 1 << 20  # a hand-written config is a few KiB
MAX_YAML_NODES = 1_000_000
MAX_JSON_BYTES = 2 << 30
MAX_JSON_NODES = 200_000_000  # about 5 GiB of Python objects


class ImageLoadError(ValueError):
    """An image file is missing, unreadable or truncated (the message names the file)."""


class InputFileError(ValueError):
    """A file roadsynth will not use as it is: not a regular file, not valid, or past a limit (`reason` says which)."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason

    def __reduce__(self):  # picklable (a task's error crosses processes on Dask / Ray)
        return type(self), (self.path, self.reason)


class FileOpError(OSError):
    """An OS error with the file and the operation: "cannot write images/1.jpg: no space left on device".
    `errno` is the original's, so callers can still tell ENOSPC from EACCES."""

    def __init__(self, op: str, path: str | Path, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.op = op

    def __str__(self) -> str:
        reason = self.strerror or ""
        return f"cannot {self.op} {self.filename}: {reason[:1].lower()}{reason[1:]}"

    def __reduce__(self):
        return type(self), (self.op, self.filename, OSError(self.errno, self.strerror))


TEMP_PREFIX = ".roadsynth-"  # every temp file roadsynth writes starts so; only such files are ever swept
# The temp file's name holds the target's, cut so that it stays under the 255-byte limit of most filesystems
# whenever the target's own name does.
_TEMP_NAME_CHARS = 100


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileOpError("create folder", e.filename or path.parent, e) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name[:_TEMP_NAME_CHARS]}.", suffix=".tmp",
                                   dir=path.parent)
    except OSError as e:
        raise FileOpError("write", path, e) from None
    try:
        os.fchmod(fd, 0o644)  # mkstemp creates 0600; outputs must be readable like any other file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and e.errno is not None:
            raise FileOpError("write", path, e) from None
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


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def _require_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise InputFileError(path, "a folder, not a file")
    kind = next((name for test, name in _KINDS if test(mode)), "not a plain file")
    raise InputFileError(path, f"not a regular file ({kind}); refusing to read it")


def open_input(path: str | Path, what: str = "file") -> BinaryIO:
    """`path` opened for binary reading, when it is a regular file (or a link to one); anything else is an
    InputFileError. It is checked before opening, because opening a FIFO blocks until a writer comes and
    opening a device can act on it, and again on the open file, in case the path was swapped in between
    (the non-blocking open keeps even that case from hanging)."""
    path = Path(path)
    try:
        _require_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except InputFileError:
        raise
    except OSError as e:
        raise FileOpError("read", path, e) from None
    try:
        _require_regular(path, os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def read_input(path: str | Path, what: str = "file", max_bytes: int | None = None) -> bytes:
    """A regular file's bytes (see `open_input`), refused past `max_bytes` without reading it all."""
    path = Path(path)
    with open_input(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if max_bytes is None:
            return f.read()
        # A size of 0 may be a file the kernel makes as it is read; one byte past the limit tells either way.
        data = f.read(max_bytes + 1) if size <= max_bytes else b""
    size = max(size, len(data))
    if size > max_bytes:
        raise InputFileError(path, f"the {what} is {_size(size)}, over the {_size(max_bytes)} limit; refusing it")
    return data


def _too_deep(max_depth: int) -> str:
    return f"the document nests deeper than {max_depth} levels; refusing it"


def _check_json_tree(path: Path, doc: Any, max_nodes: int, max_depth: int) -> None:
    # A loop, not recursion: the walk must not fail on the very documents it is there to refuse.
    count, stack = 1, [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            raise InputFileError(path, _too_deep(max_depth))
        children = node.values() if isinstance(node, dict) else node
        count += len(children)
        if count > max_nodes:
            raise InputFileError(path, f"the document has more than {max_nodes:,} values; refusing it")
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def read_json(path: str | Path, what: str = "file", *, max_bytes: int = MAX_JSON_BYTES,
              max_nodes: int = MAX_JSON_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON file's content. Missing: FileNotFoundError naming it; not a regular file, broken, or past a
    limit (see the module docstring): InputFileError naming it."""
    path = Path(path)
    data = read_input(path, what, max_bytes)
    try:
        doc = json.loads(data)
    except RecursionError:  # nested past Python's own limit (~1000), so far past `max_depth`
        raise InputFileError(path, _too_deep(max_depth)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise InputFileError(path, f"not valid JSON: {why} ({what})") from None
    _check_json_tree(path, doc, max_nodes, max_depth)
    return doc


def read_json_record(path: str | Path, what: str = "record") -> dict | None:
    """A JSON object roadsynth wrote itself (a resume or progress record), or None when it is missing, not
    a regular file, broken, past a limit or not an object: a record that cannot be trusted is redone,
    never waited for or crashed on."""
    try:
        doc = read_json(path, what)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _check_yaml_graph(path: Path, root: yaml.Node, max_nodes: int, max_depth: int) -> None:
    """Nodes and depth of the tree `root` expands to, without expanding it. An alias is the very node object
    of its anchor, so each distinct node's (size, height) is computed once and reused: a billion-laughs file
    is a few dozen distinct nodes. A node that contains itself never ends, and is refused as too deep."""
    seen: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes in its expanded subtree, levels of nesting)

    def extent(node: yaml.Node, depth: int) -> tuple[int, int]:
        if isinstance(node, yaml.ScalarNode):
            return 1, 0
        if id(node) in seen:
            size, height = seen[id(node)]
        else:
            if depth > max_depth:
                raise InputFileError(path, _too_deep(max_depth))
            children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
            size, height = 1, 0
            for child in children:
                s, h = extent(child, depth + 1)
                size, height = size + s, max(height, h)
                if size > max_nodes:
                    raise InputFileError(path, f"the document expands to more than {max_nodes:,} nodes "
                                               "(YAML aliases?); refusing it")
            height += 1
            seen[id(node)] = size, height
        if depth - 1 + height > max_depth:
            raise InputFileError(path, _too_deep(max_depth))
        return size, height

    extent(root, 1)


def read_yaml(path: str | Path, what: str = "file", *, max_bytes: int = MAX_YAML_BYTES,
              max_nodes: int = MAX_YAML_NODES, max_depth: int = MAX_DEPTH) -> Any:
    """A YAML file's content, as `yaml.safe_load` gives it, once the composed document is within the limits
    (see the module docstring). Errors as in `read_json`."""
    path = Path(path)
    data = read_input(path, what, max_bytes)
    try:
        loader = yaml.SafeLoader(data)  # reads the encoding already: bad bytes fail here
        loader.name = str(path)  # error marks then say `in "x.yaml", line 3` rather than "<byte string>"
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_yaml_graph(path, node, max_nodes, max_depth)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except RecursionError:  # the composer recurses: nested past Python's limit, so far past `max_depth`
        raise InputFileError(path, _too_deep(max_depth)) from None
    except yaml.YAMLError as e:
        raise InputFileError(path, f"not valid YAML: {e}") from None


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
        with open_input(path, "image") as f, Image.open(f) as im:
            _check_pixels(path, im.size, max_pixels)
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im, path)
    except ImageLoadError:
        raise
    except InputFileError as e:
        raise ImageLoadError(str(e)) from None
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
        with open_input(path, "image") as f, Image.open(f) as im:
            w, h = im.size
            _check_pixels(path, (w, h), max_pixels)
            orientation = im.getexif().get(0x0112, 1)
    except ImageLoadError:
        raise
    except InputFileError as e:
        raise ImageLoadError(str(e)) from None
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
