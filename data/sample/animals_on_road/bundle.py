"""Rebuild this folder from ../shared/data/animals_on_road/smiyc_roadanomaly21 (run from the repo root):

    python data/sample/animals_on_road/bundle.py ../shared/data/animals_on_road/smiyc_roadanomaly21

Images are resized to 800 px wide (JPEG q88). Boxes: `hand_labels.csv` (drawn by the roadsynth developers,
see SOURCE.md) in the coordinates of a 1000 px wide view of each original, and the boxes the benchmark's
own masks give for the five validation images (class from the species).
"""

import csv
import json
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
WIDTH = 800
CLASSES = ["cow", "sheep", "horse", "deer"]
# The validation images' mask boxes: only validation0000 shows a target species (a deer); the others
# (giraffes, a sloth, wild turkeys) stay in the test set as negatives, like the bear, goose and boar.
MASKED = {"validation0000.jpg": "deer"}


def main(src: Path) -> None:
    (HERE / "images").mkdir(exist_ok=True)
    rows = list(csv.DictReader(open(HERE / "hand_labels.csv")))
    derived = json.loads((src / "labels" / "derived_yolo_boxes" / "derived_boxes_pixels.json").read_text())
    images, anns = [], []
    for k, p in enumerate(sorted((src / "images").glob("*.jpg")), start=1):
        with Image.open(p) as im:
            w0, h0 = im.size
            out = im.convert("RGB").resize((WIDTH, round(h0 * WIDTH / w0)), Image.LANCZOS)
        out.save(HERE / "images" / p.name, quality=88)
        images.append({"id": k, "file_name": p.name, "width": out.width, "height": out.height})
        boxes = []
        view = WIDTH / 1000  # hand labels: a 1000 px wide view
        for r in rows:
            if r["file"] == p.name:
                x1, y1, x2, y2 = (float(r[c]) * view for c in ("x1", "y1", "x2", "y2"))
                boxes.append((r["class"], x1, y1, x2, y2, int(r["crowd"])))
        if p.name in MASKED:
            s = WIDTH / w0
            boxes += [(MASKED[p.name], b["x0"] * s, b["y0"] * s, b["x1"] * s, b["y1"] * s, 0)
                      for b in derived[p.name]["boxes"]]
        for cls, x1, y1, x2, y2, crowd in boxes:
            x2, y2 = min(x2, out.width), min(y2, out.height)
            anns.append({"id": len(anns) + 1, "image_id": k, "category_id": CLASSES.index(cls) + 1,
                         "bbox": [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)],
                         "area": round((x2 - x1) * (y2 - y1), 1), "iscrowd": crowd})
    coco = {"info": {"description": "SMIYC RoadAnomaly21 animal photos, boxes drawn by hand (SOURCE.md)"},
            "images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
    (HERE / "annotations.json").write_text(json.dumps(coco, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
