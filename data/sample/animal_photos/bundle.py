"""Build `real.json` and `bank.json` from the bundled animal photos (run from the repo root):

    python data/sample/animal_photos/bundle.py

Sources, all in data/sample and none of them a road scene: MSRC-v2 (cow, sheep, dog, horse segment maps),
Weizmann horses (figure-ground masks) and the Roboflow deer set (boxes; masks by GrabCut). Every animal
instance gets a box (also those cut by the border, which cut-out banks skip) and a polygon.

The photos are split in two halves per source, by a hash of the file name: `real.json` is the real arm's
pool; `bank.json` is an external cut-out bank (the photos the cut-outs come from, which the `real+sources`
control adds as they are). Photos whose animals share one segment (MSRC `exclude.csv`: herds, a ewe with
her lamb) are left out of both: they cannot be boxed one animal at a time. Of MSRC's two exact duplicate
pairs, one copy is kept.
"""

import csv
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from scipy.io import loadmat

SAMPLE = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
CLASSES = ["cow", "sheep", "horse", "deer", "dog"]
MSRC_CLASS = {4: "cow", 5: "horse", 6: "sheep", 21: "dog"}
DUPLICATES = {"9_10_s", "9_15_s"}  # = 1_26_s, 1_27_s
MIN_AREA = 200  # px of a component: smaller specks of a mask are not animals


def components(mask: np.ndarray) -> list[np.ndarray]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [labels == k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= MIN_AREA]


def polygon(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


def msrc():
    root = SAMPLE / "cutouts" / "msrc_v2_animals"
    excluded = {Path(r["image"]).stem for r in csv.DictReader(open(root / "exclude.csv"))}
    for p in sorted((root / "images").glob("*.jpg")):
        if p.stem in excluded or p.stem in DUPLICATES:
            continue
        mat = loadmat(root / "newsegmentations_mats" / f"{p.stem}_GT.mat")
        seg, labels = mat["newseg"], mat["newlabels"].ravel()
        objs = [(MSRC_CLASS[int(c)], m) for k, c in enumerate(labels, start=1) if int(c) in MSRC_CLASS
                for m in components(seg == k)]
        if objs:
            yield "msrc", p, objs


def weizmann():
    root = SAMPLE / "cutouts" / "weizmann_horse"
    for p in sorted((root / "rgb").glob("*.jpg")):
        with Image.open(p) as im:
            size = im.size
        with Image.open(root / "figure_ground" / p.name) as im:
            m = np.asarray(im.convert("L").resize(size, Image.BILINEAR)) >= 128
        parts = components(m)
        if parts:
            yield "weizmann", p, [("horse", max(parts, key=lambda x: x.sum()))]


def deer():
    from roadsynth.datasets.records import Box
    from roadsynth.generators.masks import grabcut_mask

    root = SAMPLE / "deer"
    for p in sorted((root / "images").glob("*.jpg")):
        rgb = np.asarray(Image.open(p).convert("RGB"))
        H, W = rgb.shape[:2]
        objs = []
        for line in (root / "labels" / f"{p.stem}.txt").read_text().split("\n"):
            if not line.strip():
                continue
            _, cx, cy, w, h = map(float, line.split())
            b = Box((cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H)
            m, _ = grabcut_mask(rgb, b)
            full = np.zeros((H, W), bool)
            x1, y1 = max(int(np.floor(b.x)), 0), max(int(np.floor(b.y)), 0)
            full[y1:y1 + m.shape[0], x1:x1 + m.shape[1]] = m[:H - y1, :W - x1]
            if full.any():  # the labelled box, the GrabCut outline
                objs.append(("deer", full, [b.x, b.y, b.w, b.h]))
        if objs:
            yield "deer", p, objs


def main() -> None:
    halves = {"real": ([], []), "bank": ([], [])}
    for source, path, objs in [*msrc(), *weizmann(), *deer()]:
        half = "bank" if int(hashlib.sha256(path.name.encode()).hexdigest(), 16) % 2 else "real"
        images, anns = halves[half]
        with Image.open(path) as im:
            w, h = im.size
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": path.relative_to(SAMPLE).as_posix(), "width": w, "height": h,
                       "source": source})
        for obj in objs:
            cls, m = obj[0], obj[1]
            b = obj[2] if len(obj) > 2 else box(m)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": CLASSES.index(cls) + 1,
                         "bbox": [round(v, 1) for v in b], "area": float(m.sum()), "iscrowd": 0,
                         "segmentation": polygon(m)})
    for half, (images, anns) in halves.items():
        coco = {"info": {"description": f"non-road animal photos ({half} half), see SOURCE.md"},
                "images": images, "annotations": anns,
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
        (HERE / f"{half}.json").write_text(json.dumps(coco))
        counts = {c: sum(a["category_id"] == i + 1 for a in anns) for i, c in enumerate(CLASSES)}
        print(half, len(images), "photos", counts)


if __name__ == "__main__":
    main()
