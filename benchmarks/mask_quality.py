"""How good are the masks derived from boxes? Measured against sets that have true masks.

Prints JSON, per set, side by side: roadsynth's box-to-mask step (`grabcut`: GrabCut at a working size,
generators/masks.py) and the step it replaced (`grabcut_plain`: at the photo's own size), with the full box
and an inscribed ellipse as baselines, inside each object's tight box: mean/median IoU, the share below
IoU 0.6, seconds per mask, per class where the set has classes; and what the mask quality gate
(`insert.cutout_min_quality`, GATE below) keeps and refuses of the new step's masks.

Tuning and validation are kept apart. The working size, the gate's score and its threshold were chosen on
the bundled Weizmann horses, the even-numbered MSRC instances and the COCO polygons (`tuning`). The odd
MSRC instances (cow, sheep, dog, horse) and, with `--heldout WEIZMANN_DIR`, the Weizmann horses that are
not bundled (in ../shared/data/cutouts/weizmann_horse) are `validation`: nothing was tuned on them.

    python benchmarks/mask_quality.py [--heldout ../shared/data/cutouts/weizmann_horse]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.datasets.io import load_image  # noqa: E402
from roadsynth.generators.cutout_sources import iter_msrc_instances, iter_weizmann_instances  # noqa: E402
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


GATE = 0.2  # chosen on the bundled MSRC + Weizmann masks (before the tuning/validation split; see docs/benchmarks.md)


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heldout", type=Path, help="a Weizmann folder: its horses not bundled here are a held-out set")
    args = ap.parse_args()
    t0 = time.perf_counter()
    msrc = list(iter_msrc_instances(ROOT / "data/sample/cutouts/msrc_v2_animals"))
    out = {"tuning": {
        "coco_polygons": measure_mask_quality(list(coco_samples()), gate=GATE),
        "msrc_even": measure_mask_quality([(rgb, m, c) for k, (_, rgb, m, c) in enumerate(msrc) if k % 2 == 0],
                                          gate=GATE),
        "weizmann_bundled": measure_mask_quality(
            [(rgb, m, "horse") for _, rgb, m in iter_weizmann_instances(ROOT / "data/sample/cutouts/weizmann_horse")],
            gate=GATE),
    }, "validation": {
        "msrc_odd": measure_mask_quality([(rgb, m, c) for k, (_, rgb, m, c) in enumerate(msrc) if k % 2 == 1],
                                         gate=GATE),
    }}
    if args.heldout:
        bundled = {p.name for p in (ROOT / "data/sample/cutouts/weizmann_horse/rgb").glob("*.jpg")}
        out["validation"]["weizmann_heldout"] = measure_mask_quality(
            [(rgb, m, "horse") for name, rgb, m in iter_weizmann_instances(args.heldout) if name not in bundled],
            gate=GATE)
    n = sum(v["n"] for part in out.values() for v in part.values())
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)  # both steps + the score, one core, for all n
    out["masks"] = n
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
