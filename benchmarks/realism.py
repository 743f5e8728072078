"""Realism audit of a generation config: inserted objects against the real labelled objects of the same frames.

Generates the config (in-process, into a temp folder) once per variant and prints, side by side, the
medians of the realism scores (generators/realism.py) with the counts they come from, and the targets:
- median |log luminance ratio| of inserted objects <= 1.2x that of the real objects, overall and in dark
  frames;
- median log sharpness ratio within +-0.15 of the real objects' median.
Also: generated objects standing on or drawn over the ego vehicle (target 0) and the region sources
(no silent fallbacks). Variants: `matched` (the config as it is) and `as-cut` (insert.match: null, the
pre-matching paste).

    python benchmarks/realism.py configs/animals.yaml [--n 64]     # or configs/dashcam.yaml (fleet frames)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.config import load_config  # noqa: E402
from roadsynth.datasets.records import ImageRecord  # noqa: E402
from roadsynth.generate import generate_dataset  # noqa: E402
from roadsynth.generators.restyle import polygon_mask  # noqa: E402
from roadsynth.generate.scenes import ego_mask  # noqa: E402


def targets(audit: dict) -> dict:
    out = {}
    for scope in ("all", "dark"):
        ins, real = audit[scope]["inserted"], audit[scope]["real"]
        if ins["abs_log_luminance"] is None or not real["abs_log_luminance"]:
            out[f"luminance_{scope}"] = None
            continue
        ratio = ins["abs_log_luminance"] / real["abs_log_luminance"]
        out[f"luminance_{scope}"] = {"inserted_over_real": round(ratio, 3), "target": "<= 1.2", "met": ratio <= 1.2,
                                     "inserted": ins["abs_log_luminance"], "real": real["abs_log_luminance"]}
    ins, real = audit["all"]["inserted"]["log_sharpness"], audit["all"]["real"]["log_sharpness"]
    if ins is not None and real is not None:
        gap = audit["all"].get("log_sharpness_gap") or {}
        out["sharpness_all"] = {"inserted_minus_real": round(ins - real, 3), "target": "within +-0.15",
                                "met": abs(ins - real) <= 0.15, "ci95_over_frames": gap.get("ci95"),
                                "inserted": ins, "real": real}
    return out


def ego_check(cfg, out: Path, manifest: dict) -> dict:
    """Generated objects whose contact point, or any visible pixel of whose mask, lies on its frame's ego mask
    (both must be 0), and how every frame's drivable region was found (a fallback must be one the config
    asked for: `region_failure: lower-image`)."""
    sources = {s.name: s for s in cfg.generate.scenes}
    data = json.loads((out / "annotations.json").read_text())
    anns: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        if "placement" in (a.get("provenance") or {}):  # inserted objects (pseudo-labels have no placement)
            anns.setdefault(a["image_id"], []).append(a)
    checked = contact_on_ego = pixels_on_ego = 0
    for im in data["images"]:
        w, h = im["width"], im["height"]
        ego = ego_mask(sources[im["source"]], ImageRecord(im["id"], im["background"], w, h), w, h).mask
        if not ego.any():
            continue
        for a in anns.get(im["id"], []):
            checked += 1
            cx, cy = a["provenance"]["placement"]["contact"]
            contact_on_ego += bool(ego[min(int(cy), h - 1), min(int(cx), w - 1)])
            # The polygons trace pixel edges (mask_polygons): back to pixel centres before filling.
            drawn = polygon_mask([[v - 0.5 for v in poly] for poly in a["segmentation"]], (h, w))
            pixels_on_ego += bool(drawn is not None and (drawn & ego).any())
    return {"objects_on_frames_with_ego_mask": checked, "contact_on_ego": contact_on_ego,
            "visible_pixels_on_ego": pixels_on_ego, "ego_sources": manifest["ego_sources"],
            "region_sources": manifest["region_sources"],
            "frames_skipped": len(manifest["failures"]),
            "skip_reasons": sorted({str(f.get("error", ""))[:90] for f in manifest["failures"]})}


def run(config: Path, n: int | None) -> dict:
    base = load_config(config)
    results = {}
    for variant in ("matched", "as-cut"):
        g = base.generate
        update = {"n_images": n} if n else {}
        if variant == "as-cut":
            update["insert"] = g.insert.model_copy(update={"match": None})
        cfg = base.model_copy(update={"generate": g.model_copy(update=update)})
        with tempfile.TemporaryDirectory() as tmp:
            generate_dataset(cfg, Path(tmp) / "out")
            manifest = json.loads((Path(tmp) / "out" / "manifest.json").read_text())
            ego = ego_check(cfg, Path(tmp) / "out", manifest)
        results[variant] = {"audit": manifest["realism"], "targets": targets(manifest["realism"]),
                            "generated_objects": manifest["generated_objects"],
                            "rejected_objects": manifest["rejected_objects"], "ego_and_regions": ego}
    return {"config": str(config), "images": n or base.generate.n_images, "variants": results}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--n", type=int, default=None, help="images per variant (default: the config's)")
    args = ap.parse_args()
    print(json.dumps(run(args.config, args.n), indent=1))
