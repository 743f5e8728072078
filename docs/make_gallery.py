"""Regenerate the README pictures from the bundled data: `python docs/make_gallery.py`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.config import load_config  # noqa: E402
from roadsynth.datasets.coco import read_coco  # noqa: E402
from roadsynth.datasets.io import load_image, save_image_atomic  # noqa: E402
from roadsynth.generate import generate_dataset, place_preview  # noqa: E402

OUT = ROOT / "docs" / "img"


def pair(before: np.ndarray, after: np.ndarray, width: int = 480) -> np.ndarray:
    import cv2

    h = int(before.shape[0] * width / before.shape[1])
    a, b = (cv2.resize(x, (width, h), interpolation=cv2.INTER_AREA) for x in (before, after))
    return np.concatenate([a, np.full((h, 6, 3), 255, np.uint8), b], axis=1)


def main() -> None:
    cfg = load_config(ROOT / "configs" / "animals.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen"
        ds = generate_dataset(cfg, out)
        srcs = {s.name: s.path for s in cfg.generate.scenes}
        shown = 0
        for im in ds.images:
            gen = [a for a in ds.annotations if a.image_id == im.id and a.generated]
            if len(gen) < 2:
                continue
            before = load_image(srcs[im.attributes["source"]] / im.attributes["background"])
            save_image_atomic(OUT / f"paste_{shown}.jpg", pair(before, load_image(out / "images" / im.file_name)), 88)
            shown += 1
            if shown == 3:
                break
        rows = place_preview(cfg, Path(tmp) / "place", n=4)
        for k, r in enumerate(rows[:2]):
            save_image_atomic(OUT / f"placement_{k}.jpg", load_image(Path(tmp) / "place" / r["overlay"]), 88)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
