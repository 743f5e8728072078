"""Held-out frames for the realism audit: the road frames of `../shared/data/road_frames` that are NOT bundled.

The matching's defaults were chosen looking at the bundled frames (configs/animals.yaml, configs/dashcam.yaml),
so their audit figures are not an independent check. This copies the CamVid frames (with their label maps)
and the fleet dashcam frames that the repository does not bundle into OUT and writes two configs beside them,
the same as the bundled ones but for the paths:

- `OUT/camvid.yaml`: every CamVid frame not in data/sample/camvid (label maps give the road and the real cars);
- `OUT/dashcam.yaml`: every dashcam frame not in data/sample/dashcam; no hand-drawn ego masks exist for
  them, so the bottom 30 % of each frame is the ego mask (the deepest bundled bonnet/dashboard reaches 34 %),
  and the bundled starter pseudo-labels the real vehicles.

    python benchmarks/heldout_frames.py ../shared/data/road_frames /tmp/heldout
    python benchmarks/realism.py /tmp/heldout/camvid.yaml      # and /tmp/heldout/dashcam.yaml
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def camvid(src: Path, out: Path) -> int:
    bundled = {p.name for p in (SAMPLE / "camvid" / "images").glob("*.jpg")}
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "road_labels").mkdir(exist_ok=True)
    n = 0
    for split in ("train", "val", "test"):
        for img in sorted((src / split).glob("*.jpg")):
            if img.name in bundled:
                continue
            shutil.copy2(img, out / "images" / img.name)
            shutil.copy2(src / f"{split}annot" / f"{img.stem}.png", out / "road_labels" / f"{img.stem}.png")
            n += 1
    return n


def dashcam(src: Path, out: Path) -> int:
    """Frames named as the bundled ones: `<source>__<path under images/, '/' as '__'>`, PNGs saved as JPEG."""
    bundled = {p.stem for p in (SAMPLE / "dashcam" / "images").glob("*.jpg")}
    (out / "images").mkdir(parents=True, exist_ok=True)
    n = 0
    for folder in sorted(p for p in src.iterdir() if (p / "images").is_dir()):
        source = folder.name.split("__")[0]
        for img in sorted((folder / "images").rglob("*")):
            if img.suffix.lower() not in (".jpg", ".png"):
                continue
            stem = f"{source}__" + "__".join(img.relative_to(folder / "images").with_suffix("").parts)
            if stem in bundled:
                continue
            if img.suffix.lower() == ".png":
                with Image.open(img) as im:
                    im.convert("RGB").save(out / "images" / f"{stem}.jpg", quality=95)
            else:
                shutil.copy2(img, out / "images" / f"{stem}.jpg")
            n += 1
    return n


def config(bundled: str, out: Path, n_images: int) -> dict:
    """The bundled config with its frames (and only its frames) swapped for the held-out ones."""
    cfg = yaml.safe_load((ROOT / "configs" / bundled).read_text())
    g = cfg["generate"]
    g["n_images"] = n_images
    scene = g["scenes"][0]
    g["scenes"] = [scene]  # animals.yaml's second source (Udacity highway, unlabelled) is not held out
    scene["path"] = str(out / "images")
    if "label_maps" in scene:
        scene["label_maps"] = str(out / "road_labels")
    if "ego" in scene:
        scene["ego"] = {"bottom_frac": 0.3}
    if "pseudo_labels" in scene:
        scene["pseudo_labels"]["weights"] = str(ROOT / "models" / "starter_vehicles" / "weights.pt")
    for c in g["cutouts"]:
        c["path"] = str((ROOT / "configs" / c["path"]).resolve())
    cfg["name"] = f"heldout-{cfg['name']}"
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("road_frames", type=Path, help="../shared/data/road_frames")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty: give a new folder")
    n_cam = camvid(args.road_frames / "camvid", args.out / "camvid")
    n_dash = dashcam(args.road_frames / "dashcam", args.out / "dashcam")
    for name, bundled, n in (("camvid", "animals.yaml", n_cam), ("dashcam", "dashcam.yaml", n_dash)):
        (args.out / f"{name}.yaml").write_text(yaml.safe_dump(config(bundled, args.out / name, n), sort_keys=False))
    print(f"{n_cam} CamVid and {n_dash} dashcam frames not bundled -> {args.out}/camvid.yaml, {args.out}/dashcam.yaml")


if __name__ == "__main__":
    main()
