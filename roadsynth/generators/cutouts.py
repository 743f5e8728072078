"""A bank of real object cut-outs (tight RGB crop + alpha) built from datasets with masks or boxes.

Sources: MSRC-v2 segment maps (`.mat`), Weizmann figure-ground masks, COCO polygons, and box-only
datasets (YOLO or in-memory COCO) whose masks are derived by GrabCut. Boxes touching the image border
are skipped: the object is cut off there and would be pasted with a straight edge.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from roadsynth.datasets.io import atomic_write_bytes, atomic_write_json, inside, load_image, read_json
from roadsynth.datasets.records import Dataset
from roadsynth.generators.masks import grabcut_mask

MSRC_CLASSES = ["building", "grass", "tree", "cow", "horse", "sheep", "sky", "mountain", "aeroplane", "water", "face",
                "car", "bicycle", "flower", "sign", "bird", "book", "chair", "road", "cat", "dog", "body", "boat"]


@dataclass(frozen=True)
class Cutout:
    id: str
    category: str
    rgb: np.ndarray  # HxWx3 uint8, tight crop around the object
    alpha: np.ndarray  # HxW float32 in [0, 1]
    source: str  # file (+ instance) it was cut from
    mask_method: str  # polygon | mask-image | segment-map | grabcut | ellipse
    # Where it came from, for the `real+sources` control (the photo itself, as a training image): the source
    # image's file, its (width, height), and the object's box in it (x, y, w, h pixels). None: unknown.
    source_path: str | None = None
    source_size: tuple[int, int] | None = None
    source_box: tuple[int, int, int, int] | None = None
    # Every labelled object of the source photo, (category, box), where the source knows them (COCO, box
    # datasets): the photo with its labels as they are, also the objects the bank could not cut out.
    source_labels: tuple[tuple[str, tuple[int, int, int, int]], ...] | None = None
    # How far the mask can be trusted, from the photo alone (generators/mask_score.py); None: not scored.
    quality: float | None = None
    # A person's decision in the bank's review (`decisions.csv`): "accept" keeps it whatever its score,
    # "reject" never reaches a generation; None: not reviewed.
    review: str | None = None

    @property
    def aspect(self) -> float:
        return self.rgb.shape[1] / self.rgb.shape[0]


def make_cutout(rgb: np.ndarray, mask: np.ndarray, category: str, source: str, method: str, id_: str,
                source_path: str | Path | None = None, box: Sequence[float] | None = None) -> Cutout | None:
    """A cut-out from a full-frame `mask` on its photo, scored against `box` (x, y, w, h: the labelled box
    a derived mask came from; default the mask's own box)."""
    from roadsynth.generators.mask_score import cutout_quality

    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    y1, y2, x1, x2 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    return Cutout(id_, category, np.ascontiguousarray(rgb[y1:y2, x1:x2]),
                  mask[y1:y2, x1:x2].astype(np.float32), source, method,
                  str(Path(source_path).resolve()) if source_path is not None else None,
                  (int(rgb.shape[1]), int(rgb.shape[0])), (x1, y1, x2 - x1, y2 - y1),
                  quality=cutout_quality(rgb, mask, None if box is None else tuple(box))["score"])


class CutoutBank:
    """Cut-outs by category and id. `problems`: source files that could not be used, one line each (a bad image
    in a cut-out folder is skipped and reported; the run goes on)."""

    def __init__(self, cutouts: Iterable[Cutout] = (), problems: Iterable[str] = (),
                 refused: Mapping[str, int] | None = None):
        self.cutouts = list(cutouts)
        self.problems = list(problems)
        self.refused = dict(refused or {})  # reason -> cut-outs left out by a gate (`gate`)
        # Category names match case-insensitively (a config's `Horse` finds the Weizmann `horse` cut-outs), as
        # everywhere else in roadsynth; the first spelling seen is the one reported.
        self._by_cat: dict[str, list[Cutout]] = {}
        self._names: dict[str, str] = {}
        self._by_id = {c.id: c for c in self.cutouts}
        for c in self.cutouts:
            self._by_cat.setdefault(c.category.lower(), []).append(c)
            self._names.setdefault(c.category.lower(), c.category)

    def __len__(self) -> int:
        return len(self.cutouts)

    @property
    def categories(self) -> list[str]:
        return sorted(self._names.values())

    def by_category(self, name: str) -> list[Cutout]:
        return self._by_cat.get(name.lower(), [])

    def get(self, cutout_id: str) -> Cutout | None:
        return self._by_id.get(cutout_id)

    def sample(self, category: str, rng: np.random.Generator, max_aspect: float | None = None,
               exclude: Iterable[str] = ()) -> Cutout | None:
        """A random cut-out of `category`; with `max_aspect` (w/h), preferably one no wider than that; not one
        of `exclude` (ids) while others are left."""
        pool = self.by_category(category)
        exclude = set(exclude)
        if exclude:
            pool = [c for c in pool if c.id not in exclude] or pool
        if max_aspect is not None:
            pool = [c for c in pool if c.aspect <= max_aspect] or pool
        return pool[int(rng.integers(len(pool)))] if pool else None

    def counts(self) -> dict[str, int]:
        return {self._names[k]: len(v) for k, v in sorted(self._by_cat.items())}

    @classmethod
    def concat(cls, banks: Iterable["CutoutBank"]) -> "CutoutBank":
        banks = list(banks)
        refused: dict[str, int] = {}
        for b in banks:
            for k, n in b.refused.items():
                refused[k] = refused.get(k, 0) + n
        return cls((c for b in banks for c in b.cutouts), (p for b in banks for p in b.problems), refused)

    def gate(self, min_quality: float) -> "CutoutBank":
        """The cut-outs scoring at least `min_quality`; the others are counted in `refused` by reason.
        Unscored cut-outs (banks saved before scores existed) are kept, and so are the ones a person accepted
        in review: the score is a guess from the photo, the person saw the cut-out."""
        kept, refused = [], dict(self.refused)
        for c in self.cutouts:
            if c.quality is not None and c.quality < min_quality and c.review != "accept":
                key = f"mask quality below {min_quality:g}"
                refused[key] = refused.get(key, 0) + 1
            else:
                kept.append(c)
        return CutoutBank(kept, self.problems, refused)

    def save(self, folder: str | Path, refused: Iterable[Cutout] = ()) -> None:
        """One RGBA PNG per cut-out + `index.json` (written last, so a folder with an index is complete).
        `refused` cut-outs (a quality gate's) are saved too, marked `kept: false`, so they can be reviewed;
        `load` leaves them out."""
        folder = Path(folder)
        index = []
        for i, (c, kept) in enumerate([(c, True) for c in self.cutouts] + [(c, False) for c in refused]):
            name = f"{i:05d}.png"
            rgba = np.dstack([c.rgb, np.round(c.alpha * 255).astype(np.uint8)])
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
            atomic_write_bytes(folder / name, buf.tobytes())
            index.append({"file": name, "id": c.id, "category": c.category, "source": c.source,
                          "mask_method": c.mask_method, "source_path": c.source_path,
                          "source_size": list(c.source_size) if c.source_size else None,
                          "source_box": list(c.source_box) if c.source_box else None,
                          "source_labels": [[k, list(b)] for k, b in c.source_labels] if c.source_labels else None,
                          "quality": c.quality, "kept": kept})
        atomic_write_json(folder / "index.json", index, indent=1)

    @classmethod
    def load(cls, folder: str | Path, include_refused: bool = False) -> "CutoutBank":
        """A saved bank with its review applied: cut-outs a person rejected (`decisions.csv`) are left out and
        counted in `refused`, ones they accepted are in even where the bank's gate refused them. With
        `include_refused`, every cut-out of the index, each with its `review` (for the review page)."""
        from roadsynth.generators.bank import read_decisions

        folder = Path(folder)
        index = read_index(folder)
        decisions = read_decisions(folder)
        out, refused = [], {}
        for e in index:
            review = decisions.get(str(e.get("id")))
            if not include_refused:
                if review == "reject":
                    refused["rejected in review"] = refused.get("rejected in review", 0) + 1
                    continue
                if e.get("kept") is False and review != "accept":
                    continue
            with Image.open(inside(folder, e["file"], f"{folder / 'index.json'} entry {e.get('id')!r}")) as im:
                rgba = np.asarray(im.convert("RGBA"))
            size, box, labels = e.get("source_size"), e.get("source_box"), e.get("source_labels")
            out.append(Cutout(e["id"], e["category"], np.ascontiguousarray(rgba[..., :3]),
                              rgba[..., 3].astype(np.float32) / 255.0, e["source"], e["mask_method"],
                              e.get("source_path"), tuple(size) if size else None, tuple(box) if box else None,
                              tuple((k, tuple(b)) for k, b in labels) if labels else None, e.get("quality"),
                              review))
        return cls(out, refused=refused)


def read_index(folder: Path) -> list[dict]:
    """A saved bank's `index.json`: one entry per cut-out (file, id, category, quality, kept, ...)."""
    try:
        index = read_json(folder / "index.json", "cut-out bank index")
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder}: not a cut-out bank (no index.json)") from None
    if not isinstance(index, list) or not all(isinstance(e, dict) for e in index):
        raise ValueError(f"{folder / 'index.json'}: expected a list of cut-out entries, but got {type(index).__name__}")
    return index


def _split_instances(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    # MSRC sometimes merges touching animals into one segment; components separate the clear cases.
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_area]


def iter_msrc_instances(root: str | Path, categories: Iterable[str] = ("cow", "sheep", "dog", "horse"),
                        min_area: int = 1500, problems: list[str] | None = None, curated: bool = False
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray, str]]:
    """(image name, full RGB, full-frame instance mask, category) for every usable MSRC instance. An unreadable
    image or segment map is appended to `problems` (raised when None). `curated`: leave out the segments that
    the folder's `exclude.csv` lists (image, segment_id, reason), when it has one."""
    from scipy.io import loadmat

    root = Path(root)
    wanted = set(categories)
    excluded = msrc_exclusions(root) if curated else {}
    with open(root / "segments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    images = sorted({r.get("image_jpg") or r["image"] for r in rows if r["class"] in wanted})
    for name in images:
        mat_path = root / "newsegmentations_mats" / f"{Path(name).stem}_GT.mat"
        try:
            rgb = load_image(inside(root / "images", name, "segments.csv row"))
            try:
                mat = loadmat(mat_path)
                seg, labels = mat["newseg"], mat["newlabels"].ravel()
            except (OSError, ValueError, KeyError) as e:
                raise ValueError(f"{mat_path}: cannot read segment map: {e}") from None
        except ValueError as e:  # ImageLoadError is a ValueError
            _problem(problems, e)
            continue
        for k, cls_idx in enumerate(labels, start=1):
            cls = MSRC_CLASSES[int(cls_idx) - 1] if 1 <= int(cls_idx) <= len(MSRC_CLASSES) else None
            if cls not in wanted or (name, k) in excluded:
                continue
            # The segment maps trace the outline loosely (a rim of grass); 2 px of erosion removes the halo.
            segment = cv2.erode((seg == k).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            for j, m in enumerate(_split_instances(segment, min_area)):
                if not _touches_border(m):
                    yield f"{name}#seg{k}.{j}", rgb, m, cls


def msrc_exclusions(root: Path) -> dict[tuple[str, int], str]:
    """(image, segment id) -> reason, from the folder's optional `exclude.csv`.

    The segment maps merge touching animals into one segment (a herd, a ewe with her lamb): pasted, such a
    cut-out becomes one box around several animals labelled as one, which teaches a detector wrong boxes.
    Connected components cannot split animals that touch, so the bundled folder lists them, checked by eye."""
    path = root / "exclude.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return {(r["image"], int(r["segment_id"])): r.get("reason") or "" for r in rows}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: expected columns image, segment_id (an integer), reason") from None


def from_msrc(root: str | Path, categories: Iterable[str] = ("cow", "sheep", "dog", "horse"),
              min_area: int = 1500) -> CutoutBank:
    out, problems = [], []
    for name, rgb, m, cls in iter_msrc_instances(root, categories, min_area, problems, curated=True):
        c = make_cutout(rgb, m, cls, f"msrc:{name}", "segment-map", f"msrc/{name}",
                        Path(root) / "images" / name.split("#")[0])
        if c is not None:
            out.append(c)
    return CutoutBank(out, problems)


def _problem(problems: list[str] | None, e: Exception) -> None:
    if problems is None:
        raise e
    problems.append(str(e))


def _int_box(xywh) -> tuple[int, int, int, int]:
    return tuple(int(round(float(v))) for v in xywh)


def _touches_border(mask: np.ndarray) -> bool:
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def iter_weizmann_instances(root: str | Path, min_area: int = 1500, problems: list[str] | None = None
                            ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(file name, full RGB, full-frame horse mask) for every usable Weizmann image (unreadable ones are appended
    to `problems`, raised when None)."""
    root = Path(root)
    for p in sorted((root / "rgb").glob("*.jpg")):
        try:
            rgb = load_image(p)
            mask_path = root / "figure_ground" / p.name
            try:  # stored at another size, as JPEG: resize, threshold
                with Image.open(mask_path) as im:
                    m = np.asarray(im.convert("L").resize((rgb.shape[1], rgb.shape[0]), Image.BILINEAR)) >= 128
            except (OSError, ValueError, Image.DecompressionBombError) as e:
                raise ValueError(f"{mask_path}: cannot read mask: {e}") from None
        except ValueError as e:
            _problem(problems, e)
            continue
        parts = _split_instances(m, min_area)
        if parts:
            m = max(parts, key=lambda x: x.sum())
            if not _touches_border(m):
                yield p.name, rgb, m


def from_weizmann(root: str | Path, min_area: int = 1500) -> CutoutBank:
    out, problems = [], []
    for name, rgb, m in iter_weizmann_instances(root, min_area, problems):
        c = make_cutout(rgb, m, "horse", f"weizmann:{name}", "mask-image", f"weizmann/{Path(name).stem}",
                        Path(root) / "rgb" / name)
        if c is not None:
            out.append(c)
    return CutoutBank(out, problems)


def from_coco_polygons(instances_json: str | Path, images_dir: str | Path, categories: Iterable[str],
                       min_area: int = 1500) -> CutoutBank:
    d = read_json(instances_json, "COCO instances file")
    wanted = {c["id"]: c["name"] for c in d["categories"] if c["name"] in set(categories)}
    by_image = {im["id"]: im for im in d["images"]}
    every = {c["id"]: c["name"] for c in d["categories"]}
    labels: dict[int, list] = {}  # every class, not only the wanted ones: the photo's labels as they are
    for a in d["annotations"]:
        if a["category_id"] in every and not a.get("iscrowd"):
            labels.setdefault(a["image_id"], []).append((every[a["category_id"]], _int_box(a["bbox"])))
    out, problems = [], []
    for a in d["annotations"]:
        if a["category_id"] not in wanted or a.get("iscrowd") or not isinstance(a.get("segmentation"), list):
            continue
        if a.get("area", 0) < min_area:
            continue
        im = by_image[a["image_id"]]
        try:
            rgb = load_image(inside(images_dir, im["file_name"], f"image {im['id']}"))
        except ValueError as e:
            problems.append(str(e))
            continue
        m = np.zeros(rgb.shape[:2], np.uint8)
        for poly in a["segmentation"]:
            cv2.fillPoly(m, [np.round(np.asarray(poly).reshape(-1, 2)).astype(np.int32)], 1)
        if _touches_border(m.astype(bool)):
            continue
        c = make_cutout(rgb, m.astype(bool), wanted[a["category_id"]], f"coco:{im['file_name']}#ann{a['id']}",
                        "polygon", f"coco/{a['id']}", Path(images_dir) / im["file_name"])
        if c is not None:
            out.append(replace(c, source_labels=tuple(labels.get(a["image_id"], ()))))
    return CutoutBank(out, problems)


def build_bank_from_boxes(ds: Dataset, images_root: str | Path, class_map: Mapping[str, str],
                          min_side: int = 24, keep_fallback: bool = False) -> CutoutBank:
    """Cut-outs from box annotations (`class_map`: dataset category name -> roadsynth category) via GrabCut.

    Where GrabCut degenerates the mask would be a plain ellipse, which pastes as a visible oval of
    background: such instances are skipped unless `keep_fallback`.
    """
    names = {c.id: c.name for c in ds.categories}
    lower_map = {k.lower(): v for k, v in class_map.items()}
    by_image = ds.annotations_by_image()
    out, problems = [], []
    for im in ds.images:
        anns = [a for a in by_image.get(im.id, []) if names[a.category_id].lower() in lower_map and not a.iscrowd]
        if not anns:
            continue
        try:
            rgb = load_image(inside(images_root, im.file_name, f"image {im.id}"))
        except ValueError as e:
            problems.append(str(e))
            continue
        H, W = rgb.shape[:2]
        for a in anns:
            b = a.bbox
            if min(b.w, b.h) < min_side or b.x <= 1 or b.y <= 1 or b.x2 >= W - 1 or b.y2 >= H - 1:
                continue  # too small to cut out, or cut off by the image border
            m, method = grabcut_mask(rgb, b)
            if method != "grabcut" and not keep_fallback:
                continue
            full = np.zeros((H, W), bool)
            x1, y1 = max(int(np.floor(b.x)), 0), max(int(np.floor(b.y)), 0)
            full[y1 : y1 + m.shape[0], x1 : x1 + m.shape[1]] = m
            c = make_cutout(rgb, full, lower_map[names[a.category_id].lower()],
                            f"boxes:{im.file_name}#ann{a.id}", method, f"boxes/{im.id}/{a.id}",
                            Path(images_root) / im.file_name, box=b.xywh())
            if c is not None:  # the labelled box, not the mask's: the photo's box as it was drawn
                out.append(replace(c, source_box=_int_box(b.xywh()), source_labels=tuple(
                    (lower_map.get(names[o.category_id].lower(), names[o.category_id]), _int_box(o.bbox.xywh()))
                    for o in by_image.get(im.id, []) if not o.iscrowd)))
    return CutoutBank(out, problems)


def from_yolo(root: str | Path, class_map: Mapping[str, str]) -> CutoutBank:
    from roadsynth.datasets.yolo import read_yolo

    ds, images_root = read_yolo(root)
    return build_bank_from_boxes(ds, images_root, class_map)


def build_bank(sources: Iterable[Mapping[str, Any]]) -> CutoutBank:
    """Build from config-like dicts (`roadsynth.config.CutoutSource.model_dump()`)."""
    banks = []
    for s in sources:
        kind, path = s["kind"], Path(s["path"])
        if not path.exists():
            raise FileNotFoundError(f"{path}: cut-out source ({kind}) not found")
        if kind == "msrc":
            banks.append(from_msrc(path, s.get("categories") or ("cow", "sheep", "dog", "horse"), s.get("min_area", 1500)))
        elif kind == "weizmann":
            banks.append(from_weizmann(path, s.get("min_area", 1500)))
        elif kind == "coco":
            banks.append(from_coco_polygons(path, s["images_dir"], s.get("categories") or (), s.get("min_area", 1500)))
        elif kind == "yolo":
            banks.append(from_yolo(path, s.get("class_map") or {}))
        elif kind == "bank":
            banks.append(CutoutBank.load(path))
        else:
            raise ValueError(f"`kind` must be one of msrc, weizmann, coco, yolo, bank, but got {kind!r}")
    return CutoutBank.concat(banks)
