"""COCO validator: reports every problem with the id (and file) it belongs to, never crashes on garbage.

It works on the raw JSON, not on records: broken input may not even parse into records.
Boxes may reach 1 px past the image border: labelling tools and float rounding routinely produce
x + w = width + 0.5, which every trainer clips harmlessly; more than that is a real labelling error.

Every problem is an "error" (the file is wrong) except image files that no record names, which are a
"warning": an images folder shared by several annotation files (train and val) is normal, and training
never reads a file no record names.
"""

from __future__ import annotations

import math
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageOps

from roadsynth.datasets.io import IMAGE_SUFFIXES, InputFileError, open_input, read_json

BORDER_TOLERANCE_PX = 1.0


@dataclass(frozen=True)
class Problem:
    where: str
    message: str
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_ids(items: list, kind: str, problems: list[Problem]) -> dict[int, Any]:
    seen: dict[int, Any] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(Problem(f"{kind} #{i}", f"must be an object, but got {type(item).__name__}"))
            continue
        id_ = item.get("id")
        if not _is_int(id_):
            problems.append(Problem(f"{kind} #{i}", f"`id` must be an integer, but got {id_!r}"))
            continue
        if id_ <= 0:
            problems.append(Problem(f"{kind} {id_}", f"`id` must be positive, but got {id_}"))
        if id_ in seen:
            problems.append(Problem(f"{kind} {id_}", "duplicate id"))
            continue
        seen[id_] = item
    return seen


def _image_where(im: dict) -> str:
    return f"image {im.get('id')} ({im.get('file_name')})"


def _check_file_name(im: dict, problems: list[Problem]) -> str | None:
    name = im.get("file_name")
    where = _image_where(im)
    if not isinstance(name, str) or not name:
        problems.append(Problem(where, f"`file_name` must be a non-empty string, but got {name!r}"))
        return None
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        problems.append(Problem(where, "`file_name` is absolute; it must be relative to the images root"))
        return None
    if posixpath.normpath(posix).startswith(".."):
        problems.append(Problem(where, "`file_name` escapes the images root (`..`)"))
        return None
    return posix


def _check_image_file(path: Path, im: dict) -> list[Problem]:
    where = _image_where(im)
    try:
        with open_input(path, "image") as fp, Image.open(fp) as f:
            f.load()  # full decode: truncated files fail here, not at training time
            f = ImageOps.exif_transpose(f)
            w, h = f.size
    except FileNotFoundError:
        return [Problem(where, f"file not found: {path}")]
    except InputFileError as e:
        return [Problem(where, str(e))]
    except Exception as e:  # noqa: BLE001 - any decoder failure is a problem report
        return [Problem(where, f"file is unreadable, truncated or corrupt: {e}")]
    if (im.get("width"), im.get("height")) != (w, h):
        return [Problem(where, f"size mismatch: JSON says {im.get('width')}x{im.get('height')}, file is {w}x{h}")]
    return []


def _check_segmentation(seg: Any, iscrowd: Any, where: str, problems: list[Problem]) -> None:
    if seg is None or seg == []:
        return
    if isinstance(seg, dict):
        if "size" not in seg or "counts" not in seg:
            problems.append(Problem(where, "RLE segmentation must have `size` and `counts`"))
        return
    if not isinstance(seg, list):
        problems.append(Problem(where, f"segmentation must be a list of polygons or an RLE dict, but got {type(seg).__name__}"))
        return
    if iscrowd == 1:
        problems.append(Problem(where, "iscrowd=1 expects an RLE segmentation, but got polygons"))
    for k, poly in enumerate(seg):
        if not isinstance(poly, list) or not all(_is_num(v) and math.isfinite(v) for v in poly):
            problems.append(Problem(where, f"polygon {k} must be a flat list of finite numbers"))
        elif len(poly) < 6 or len(poly) % 2:
            problems.append(Problem(where, f"polygon {k} must have an even number (>= 6) of coordinates, but has {len(poly)}"))


def _check_annotation(a: dict, images: dict, cats: dict, problems: list[Problem]) -> None:
    where = f"annotation {a['id']}"
    im = images.get(a.get("image_id")) if _is_int(a.get("image_id")) else None
    if im is None:
        problems.append(Problem(where, f"`image_id` {a.get('image_id')!r} references no image"))
    if not _is_int(a.get("category_id")) or a.get("category_id") not in cats:
        problems.append(Problem(where, f"`category_id` {a.get('category_id')!r} references no category"))
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_num(v) for v in bbox):
        problems.append(Problem(where, f"`bbox` must be 4 numbers [x, y, w, h], but got {bbox!r}"))
    else:
        x, y, w, h = bbox
        if not all(math.isfinite(v) for v in bbox):
            problems.append(Problem(where, f"bbox has a non-finite value {bbox}"))
        elif w <= 0 or h <= 0:
            problems.append(Problem(where, f"bbox has zero or negative size w={w} h={h}"))
        elif x < -BORDER_TOLERANCE_PX or y < -BORDER_TOLERANCE_PX:
            problems.append(Problem(where, f"bbox starts outside the image at ({x}, {y})"))
        elif im is not None and _is_num(im.get("width")) and _is_num(im.get("height")) and (
            x + w > im["width"] + BORDER_TOLERANCE_PX or y + h > im["height"] + BORDER_TOLERANCE_PX
        ):
            problems.append(Problem(where, f"bbox {bbox} extends outside the {im['width']}x{im['height']} image"))
    area = a.get("area", None)
    if "area" not in a:
        problems.append(Problem(where, "`area` is missing"))
    elif not _is_num(area) or not math.isfinite(area) or area < 0:
        problems.append(Problem(where, f"`area` must be a finite non-negative number, but got {area!r}"))
    iscrowd = a.get("iscrowd", None)
    if "iscrowd" not in a:
        problems.append(Problem(where, "`iscrowd` is missing"))
    elif not _is_int(iscrowd) or iscrowd not in (0, 1):
        problems.append(Problem(where, f"`iscrowd` must be 0 or 1, but got {iscrowd!r}"))
    _check_segmentation(a.get("segmentation"), iscrowd, where, problems)


def validate_coco(coco: Any, images_root: str | Path | None = None, *, check_images: bool = True,
                  source: str = "annotations") -> list[Problem]:
    problems: list[Problem] = []
    if not isinstance(coco, dict):
        return [Problem(source, f"top level must be a JSON object, but got {type(coco).__name__}")]
    tables = {}
    for key in ("images", "annotations", "categories"):
        value = coco.get(key)
        if not isinstance(value, list):
            problems.append(Problem(source, f"`{key}` must be a list, but got {type(value).__name__ if key in coco else 'nothing'}"))
            value = []
        tables[key] = value
    images = _check_ids(tables["images"], "image", problems)
    cats = _check_ids(tables["categories"], "category", problems)
    anns = _check_ids(tables["annotations"], "annotation", problems)
    for c in cats.values():
        if not isinstance(c.get("name"), str) or not c.get("name"):
            problems.append(Problem(f"category {c['id']}", f"`name` must be a non-empty string, but got {c.get('name')!r}"))
    files = []
    for im in images.values():
        for key in ("width", "height"):
            if not _is_int(im.get(key)) or im.get(key) <= 0:
                problems.append(Problem(_image_where(im), f"`{key}` must be a positive integer, but got {im.get(key)!r}"))
        name = _check_file_name(im, problems)
        if name is not None and check_images and images_root is not None:
            files.append((Path(images_root) / name, im))
    for a in anns.values():
        _check_annotation(a, images, cats, problems)
    if files:
        with ThreadPoolExecutor(max_workers=4) as pool:  # decoding releases the GIL
            for found in pool.map(lambda f: _check_image_file(*f), files):
                problems.extend(found)
    if check_images and images_root is not None:
        problems += _unnamed_files(Path(images_root), {posixpath.normpath(str(im.get("file_name")))
                                                       for im in images.values()})
    return problems


def _unnamed_files(root: Path, named: set[str], shown: int = 20) -> list[Problem]:
    """Image files under `root` that no record names (a stale output of an earlier run, a stray copy)."""
    if not root.is_dir():
        return []
    stray = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.relative_to(root).as_posix() not in named)
    out = [Problem(str(root / s), "image file that no record names", "warning") for s in stray[:shown]]
    if len(stray) > shown:
        out.append(Problem(str(root), f"... and {len(stray) - shown} more image files that no record names",
                           "warning"))
    return out


def validate_coco_file(path: str | Path, images_root: str | Path | None = None, *,
                       check_images: bool = True) -> list[Problem]:
    path = Path(path)
    try:
        coco = read_json(path, "annotations file")
    except FileNotFoundError:
        return [Problem(str(path), "file not found")]
    except InputFileError as e:  # not a regular file, not JSON, or past a limit
        return [Problem(str(path), e.reason)]
    return validate_coco(coco, images_root, check_images=check_images, source=str(path))
