"""How good are GrabCut masks derived from boxes? Measured against sets that have true masks.

Prints JSON: mean/median IoU of GrabCut (with its ellipse fallback), the full box and an inscribed
ellipse, inside each object's tight box, on COCO polygons (tests/fixtures/coco_tiny), MSRC segment
maps and Weizmann horse masks (data/sample/cutouts), each on its full original photo.

    python benchmarks/mask_quality.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.datasets.io import load_image  # noqa: E402
from roadsynth.generators.cutouts import iter_msrc_instances, iter_weizmann_instances  # noqa: E402
from roadsynth.generators.masks import measure_mask_quality  # noqa: E402


def coco_samples():
    d = json.loads((ROOT / "tests/fixtures/coco_tiny/instances.json").read_text())
    images = {i["id"]: i for i in d["images"]}
    for a in d["annotations"]:
        if a["iscrowd"] or a["area"] < 1500:
            continue
        rgb = load_image(ROOT / "tests/fixtures/coco_tiny/images" / images[a["image_id"]]["file_name"])
        m = np.zeros(rgb.shape[:2], np.uint8)
        for poly in a["segmentation"]:
            cv2.fillPoly(m, [np.round(np.asarray(poly).reshape(-1, 2)).astype(np.int32)], 1)
        yield rgb, m.astype(bool)


def main() -> None:
    out = {
        "coco_polygons": measure_mask_quality(list(coco_samples())),
        "msrc_animals": measure_mask_quality(
            [(rgb, m) for _, rgb, m, _ in iter_msrc_instances(ROOT / "data/sample/cutouts/msrc_v2_animals")]),
        "weizmann_horses": measure_mask_quality(
            [(rgb, m) for _, rgb, m in iter_weizmann_instances(ROOT / "data/sample/cutouts/weizmann_horse")]),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
