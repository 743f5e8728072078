"""Regenerate the README pictures from the bundled data: `python docs/make_gallery.py`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roadsynth.config import load_config  # noqa: E402
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
    blend_gallery(cfg)
    weather_gallery()
    restyle_gallery()
    fleet_gallery()
    cutout_gallery()
    print(f"wrote {OUT}")


FLEET_FRAMES = {  # frame of data/sample/dashcam -> what it shows
    "culane_night__nightblur05312336_0004.MP4__01410.jpg": "night",
    "road_obstacles_v2__loc2_empty.jpg": "dusk, frost",
    "road_obstacles_v2__loc1_storm.jpg": "snowstorm",
    "bdd100k__cc97fab0-f9a08d07.jpg": "white bonnet",
    "bdd100k__caeb782d-4a20b7c4.jpg": "wet road, bonnet",  # no rain frame is bundled: the nearest one
}


def fleet_gallery(width: int = 400) -> None:
    """Dashcam frames: original | pasted as cut (no matching) | pasted with appearance matching; the same
    objects, places and seeds, the ego vehicle masked (configs/dashcam.yaml)."""
    import cv2

    from roadsynth.generate import FrameJob, Worker

    cfg = load_config(ROOT / "configs" / "dashcam.yaml")
    cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={
        "insert": cfg.generate.insert.model_copy(update={"objects_per_image": (2, 2)})})})
    as_cut = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={
        "insert": cfg.generate.insert.model_copy(update={"match": None})})})
    workers = [Worker(c) for c in (as_cut, cfg)]
    ds, root = workers[0].sources[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, what) in enumerate(FLEET_FRAMES.items()):
            rec = next(im for im in ds.images if im.file_name == name)
            job = FrameJob(k, 0, rec.id, 7 + k)
            tiles = [load_image(root / name)]
            for v, w in enumerate(workers):
                out = Path(tmp) / str(v)
                w.run_chunk(k, [job], out)
                tiles.append(load_image(out / "images" / f"{k + 1:06d}.jpg"))
            h = int(tiles[0].shape[0] * width / tiles[0].shape[1])
            small = [cv2.resize(t, (width, h), interpolation=cv2.INTER_AREA) for t in tiles]
            labelled = []
            for t, label in zip(small, (f"original ({what})", "pasted as cut", "matched to the scene")):
                head = np.full((22, width, 3), 255, np.uint8)
                cv2.putText(head, label, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
                labelled.append(np.concatenate([head, t], axis=0))
            small, h = labelled, h + 22
            gap = np.full((h, 4, 3), 255, np.uint8)
            rows.append(np.concatenate([small[0], gap, small[1], gap, small[2]], axis=1))
            rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    save_image_atomic(OUT / "fleet_matching.jpg", np.concatenate(rows[:-1], axis=0), 88)


def blend_gallery(cfg, width: int = 440) -> None:
    """The same frames, objects and seeds with feathered alpha vs Poisson blending, cropped to the objects."""
    import cv2

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outs = {}
        for blend in ("feather", "poisson"):
            g = cfg.generate.model_copy(update={"insert": cfg.generate.insert.model_copy(update={"blend": blend})})
            outs[blend] = (generate_dataset(cfg.model_copy(update={"generate": g}), Path(tmp) / blend), Path(tmp) / blend)
        ds, _ = outs["feather"]
        for im in ds.images:
            gen = [a for a in ds.annotations if a.image_id == im.id and a.generated]
            if len(gen) < 2 or len(rows) == 2:
                continue
            x1 = int(max(min(a.bbox.x for a in gen) - 40, 0))
            y1 = int(max(min(a.bbox.y for a in gen) - 40, 0))
            x2 = int(min(max(a.bbox.x2 for a in gen) + 40, im.width))
            y2 = int(min(max(a.bbox.y2 for a in gen) + 40, im.height))
            tiles = []
            for blend, (_, folder) in outs.items():
                crop = load_image(folder / "images" / im.file_name)[y1:y2, x1:x2]
                h = int(crop.shape[0] * width / crop.shape[1])
                tiles.append(label(cv2.resize(crop, (width, h), interpolation=cv2.INTER_AREA), blend))
            rows.append(np.concatenate([tiles[0], np.full((tiles[0].shape[0], 6, 3), 255, np.uint8), tiles[1]], axis=1))
    w = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 6), (0, w - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    save_image_atomic(OUT / "paste_blend.jpg", np.concatenate(rows, axis=0), 88)


def label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    img = img.copy()
    for k, line in enumerate(text.split("\n")):
        y = 24 + 24 * k
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 4, cv2.LINE_AA)
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def weather_gallery(width: int = 320) -> None:
    """One real frame (nuScenes, 1600x900) under every condition at severity 2, plus a CamVid frame at 1-3."""
    import cv2

    from roadsynth.generators.weather import CONDITIONS, WeatherRestyler

    frame = load_image(next((ROOT / "tests/fixtures/nuscenes").glob("*CAM_FRONT__*.jpg")))
    tiles = [label(cv2.resize(frame, (width, width * 9 // 16), interpolation=cv2.INTER_AREA), "original")]
    for c in CONDITIONS:
        out = WeatherRestyler(c, 2).restyle(frame, [], np.random.default_rng(4)).image
        tiles.append(label(cv2.resize(out, (width, width * 9 // 16), interpolation=cv2.INTER_AREA), c))
    rows = [np.concatenate(tiles[i : i + 4], axis=1) for i in range(0, 8, 4)]
    save_image_atomic(OUT / "weather_conditions.jpg", np.concatenate(rows, axis=0), 88)
    cam = load_image(ROOT / "data/sample/camvid/images/0016E5_04440.jpg")
    sev = [label(cv2.resize(WeatherRestyler(c, s).restyle(cam, [], np.random.default_rng(1)).image, (width, width * 3 // 4),
                            interpolation=cv2.INTER_AREA), f"{c} {s}") for c in ("rain", "fog", "night") for s in (1, 2, 3)]
    rows = [np.concatenate(sev[i : i + 3], axis=1) for i in range(0, 9, 3)]
    save_image_atomic(OUT / "weather_severity.jpg", np.concatenate(rows, axis=0), 88)


def restyle_gallery() -> None:
    """Paint restyle (weight-free) on bundled vehicle photos: before | after | vehicle mask outlined."""
    import cv2

    from roadsynth.datasets.yolo import read_yolo
    from roadsynth.generators.restyle import PaintRestyler, Style

    ds, root = read_yolo(ROOT / "data/sample/vehicles_test")  # the pictures need no training split
    names = {c.id: c.name for c in ds.categories}
    by_image = ds.annotations_by_image()
    picks = {"2d499dab8c71a566.jpg": Style("yellow", color=(235, 190, 30)),
             "1d9e2bdfc0ef4f35.jpg": Style("red", color=(175, 25, 30)),
             "02d437a356a7c16e.jpg": Style("blue", color=(30, 60, 160))}
    rows = []
    for im in ds.images:
        if im.file_name not in picks:
            continue
        restyler = PaintRestyler([picks[im.file_name]], names, categories=["Car"], min_box_px=80, max_objects=1)
        rgb = load_image(root / im.file_name)
        out = restyler.restyle(rgb, by_image.get(im.id, []), np.random.default_rng(0))
        outline = out.image.copy()
        contours, _ = cv2.findContours(out.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(outline, contours, -1, (255, 255, 255), 2)
        h = int(rgb.shape[0] * 320 / rgb.shape[1])
        rows.append(np.concatenate([pair(rgb, out.image, 320), np.full((h, 6, 3), 255, np.uint8),
                                    cv2.resize(outline, (320, h), interpolation=cv2.INTER_AREA)], axis=1))
    save_image_atomic(OUT / "restyle_paint.jpg", np.concatenate(rows, axis=0), 88)


def cutout_gallery(tile: int = 200, per_class: int = 2) -> None:
    """Box-to-mask before and after on validation masks (never trained or tuned on): the first two odd MSRC
    instances of each of cow, sheep, dog, and the first two odd-numbered Weizmann horses of ../shared that the
    box segmenter kept for validation: the photo with the box | the true mask | GrabCut at the photo's size
    (the oldest step) | GrabCut at the working size | the box segmenter (models/box_segmenter), each cut-out
    on grey with its IoU against the true mask and its quality score."""
    import cv2

    from roadsynth.datasets.records import Box
    from roadsynth.generators.bank import on_grey
    from roadsynth.generators.cutout_sources import iter_msrc_instances
    from roadsynth.generators.mask_score import cutout_quality
    from roadsynth.generators.box_segmenter import load_segmenter
    from roadsynth.generators.masks import grabcut_mask, learned_mask, mask_iou
    from roadsynth.generators.segmenter_train import validation_instances

    seg = load_segmenter(ROOT / "models/box_segmenter")
    rows = []
    msrc = [x for k, x in enumerate(iter_msrc_instances(ROOT / "data/sample/cutouts/msrc_v2_animals")) if k % 2 == 1]
    picks = [x for c in ("cow", "sheep", "dog") for x in [x for x in msrc if x[3] == c][:per_class]]
    horses = ROOT.parent / "shared/data/cutouts/weizmann_horse"
    if horses.is_dir():
        kept, _ = validation_instances([{"kind": "weizmann", "path": horses, "parity": "odd"}],
                                       seg.manifest["instances"], 1500)
        picks += [(n, rgb, m, c) for n, _, rgb, m, c in kept[:per_class]]
    for name, rgb, true, cls in picks:
        ys, xs = np.nonzero(true)
        box = Box.from_xyxy(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        x1, y1, x2, y2 = int(box.x), int(box.y), int(box.x2), int(box.y2)
        photo = rgb.copy()
        cv2.rectangle(photo, (x1, y1), (x2 - 1, y2 - 1), (255, 60, 40), 2)
        crop = lambda m: m[y1:y2, x1:x2]  # noqa: E731
        tiles = [label(on_grey(photo, np.ones(photo.shape[:2], bool), tile), cls),
                 label(on_grey(crop(rgb), crop(true), tile), "true mask")]
        steps = (("GrabCut old", lambda: grabcut_mask(rgb, box, work_px=None)),
                 ("GrabCut", lambda: grabcut_mask(rgb, box)), ("learned", lambda: learned_mask(rgb, box, seg)))
        for title, step in steps:
            m, *_, sure = (*step(), None) if title != "learned" else step()
            full = np.zeros(true.shape, bool)
            full[y1:y1 + m.shape[0], x1:x1 + m.shape[1]] = m
            q = cutout_quality(rgb, full, box.xywh())["score"]
            # the segmenter's certainty, and whether its floor refuses the mask
            s = "" if sure is None else f"\nsure {sure:.2f}{'' if sure >= seg.min_certainty else ' refused'}"
            tiles.append(label(on_grey(crop(rgb), m, tile), f"{title}\nIoU {mask_iou(m, crop(true)):.2f} q {q:.2f}{s}"))
        rows.append(np.concatenate([np.pad(t, ((3, 3), (3, 3), (0, 0)), constant_values=255) for t in tiles], axis=1))
    save_image_atomic(OUT / "cutouts_before_after.jpg", np.concatenate(rows, axis=0), 88)


if __name__ == "__main__":
    if sys.argv[1:] == ["cutouts"]:  # only the cut-out picture (no generation)
        cutout_gallery()
    else:
        main()
