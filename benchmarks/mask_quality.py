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

With `--segmenter FOLDER` (a box segmenter, `roadsynth train-segmenter`) its step `learned` is measured
beside them, and validation is the segmenter's own: the `validation` sources of its config (odd MSRC
instances, odd-numbered Weizmann horses), less every photo that is a near-duplicate of one it trained on
(segmenter_train.validation_instances), and `validation_pooled` is both sets as one. `learned_sure_*` are the
masks its certainty floor keeps, `learned_unsure_refused` the share it refuses. On the tuning sets the
learned step's figures are training figures.

    python benchmarks/mask_quality.py [--heldout ../shared/data/cutouts/weizmann_horse]
    python benchmarks/mask_quality.py --segmenter models/box_segmenter
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


def segmenter_validation(folder: Path, seg) -> dict:
    """Each validation source of the segmenter's config, measured with every step, near-duplicates of its
    training photos left out (and counted)."""
    from roadsynth.config.segmenter import SegmenterSource
    from roadsynth.generators.segmenter_train import validation_instances

    out = {}
    for raw in seg.manifest["config"]["validation"]:
        s = SegmenterSource.model_validate(raw | {"path": str((folder / raw["path"]).resolve())} | (
            {"images_dir": str((folder / raw["images_dir"]).resolve())} if raw.get("images_dir") else {}))
        kept, dropped = validation_instances([s.model_dump()], seg.manifest["instances"], 1500)
        name = f"{s.kind}_{s.parity or 'all'}"
        out[name] = measure_mask_quality([(rgb, m, c) for _, _, rgb, m, c in kept], gate=GATE, segmenter=seg)
        out[name]["near_duplicates_of_training_left_out"] = len(dropped)
    return out


def pooled(parts: dict[str, dict]) -> dict:
    """The validation sets as one: each figure the mean of the sets' figures, weighted by the masks it is over
    (all masks, or those a gate or the certainty floor kept)."""
    n = sum(r["n"] for r in parts.values())
    out: dict = {"n": n, "sets": sorted(parts)}
    steps = [k for k in ("grabcut_plain", "grabcut", "learned", "box", "ellipse") if f"{k}_mean_iou" in parts[out["sets"][0]]]
    for k in steps:
        out[f"{k}_mean_iou"] = sum(r[f"{k}_mean_iou"] * r["n"] for r in parts.values()) / n
        if all(f"{k}_below_0.6" in r for r in parts.values()):
            out[f"{k}_below_0.6"] = sum(r[f"{k}_below_0.6"] * r["n"] for r in parts.values()) / n
    for refused, kept in (("grabcut_gated_refused", "grabcut_gated_kept"), ("learned_gated_refused", "learned_gated_kept"),
                          ("learned_unsure_refused", "learned_sure")):
        if not all(refused in r for r in parts.values()):
            continue
        w = {name: r["n"] * (1 - r[refused]) for name, r in parts.items()}
        out[refused] = 1 - sum(w.values()) / n
        for fig in ("mean_iou", "below_0.6"):
            out[f"{kept}_{fig}"] = sum(parts[name][f"{kept}_{fig}"] * w[name] for name in parts if w[name]) / sum(w.values())
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heldout", type=Path, help="a Weizmann folder: its horses not bundled here are a held-out set")
    ap.add_argument("--segmenter", type=Path, help="a box segmenter folder: measure it too, on its validation sets")
    args = ap.parse_args()
    seg = None
    if args.segmenter:
        from roadsynth.generators.box_segmenter import load_segmenter

        seg = load_segmenter(args.segmenter)
    t0 = time.perf_counter()
    msrc = list(iter_msrc_instances(ROOT / "data/sample/cutouts/msrc_v2_animals"))
    out = {"tuning": {
        "coco_polygons": measure_mask_quality(list(coco_samples()), gate=GATE, segmenter=seg),
        "msrc_even": measure_mask_quality([(rgb, m, c) for k, (_, rgb, m, c) in enumerate(msrc) if k % 2 == 0],
                                          gate=GATE, segmenter=seg),
        "weizmann_bundled": measure_mask_quality(
            [(rgb, m, "horse") for _, rgb, m in iter_weizmann_instances(ROOT / "data/sample/cutouts/weizmann_horse")],
            gate=GATE, segmenter=seg),
    }, "validation": {}}
    if seg is not None:
        out["validation"] = segmenter_validation(args.segmenter, seg)
        out["validation_pooled"] = pooled(out["validation"])
    else:
        out["validation"]["msrc_odd"] = measure_mask_quality(
            [(rgb, m, c) for k, (_, rgb, m, c) in enumerate(msrc) if k % 2 == 1], gate=GATE)
    if args.heldout and seg is None:
        bundled = {p.name for p in (ROOT / "data/sample/cutouts/weizmann_horse/rgb").glob("*.jpg")}
        out["validation"]["weizmann_heldout"] = measure_mask_quality(
            [(rgb, m, "horse") for name, rgb, m in iter_weizmann_instances(args.heldout) if name not in bundled],
            gate=GATE)
    n = sum(v["n"] for part in (out["tuning"], out["validation"]) for v in part.values())
    out["wall_seconds"] = round(time.perf_counter() - t0, 1)  # both steps + the score, one core, for all n
    out["masks"] = n
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
