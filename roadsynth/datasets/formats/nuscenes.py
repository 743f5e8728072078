"""nuScenes and nuImages, from their v1.0 JSON tables (no devkit needed).

nuScenes: every key-frame camera image, with the sample's 3D boxes projected into it (the 2D box of the
projected corners in front of the camera, clipped to the image, as the devkit's export does), the
camera's intrinsics, mounting height and pitch from its calibrated sensor, and the ego pose. nuImages:
its own 2D boxes. Both keep visibility / attributes, and take weather and time of day from the scene's
or log's description where it says so ("night", "rain").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from roadsynth.datasets.formats import Categories, Format, camera_block
from roadsynth.datasets.io import read_json
from roadsynth.datasets.records import Annotation, Box, Dataset, DatasetSplit, ImageRecord


def _tables(root: Path, version: str, names: tuple[str, ...]
            ) -> tuple[dict[str, list[dict]], dict[str, dict[str, dict]]]:
    """(rows per table, rows per table by token) of the named tables (a missing table has no rows)."""
    folder = root / version
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: nuScenes/nuImages table folder not found (version {version!r})")
    out = {}
    for name in names:
        path = folder / f"{name}.json"
        out[name] = read_json(path, f"{name} table") if path.exists() else []
    by = {name: {r["token"]: r for r in rows} for name, rows in out.items() if rows and "token" in rows[0]}
    return out, by


def _group(rows: list[dict], key: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


def quat_to_matrix(q: list[float]) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion (nuScenes' convention)."""
    w, x, y, z = (float(v) for v in q)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def camera_from_sensor(cs: dict, source: str) -> dict:
    """Camera block from a calibrated sensor: K, and height and pitch from the sensor-to-ego transform
    (ego frame: z up, origin on the ground)."""
    k = np.asarray(cs["camera_intrinsic"], float)
    r = quat_to_matrix(cs["rotation"])
    forward = r[:, 2]  # the camera's optical axis in ego coordinates
    pitch = math.degrees(math.asin(float(np.clip(-forward[2] / np.linalg.norm(forward), -1, 1))))
    return camera_block(k[0, 0], k[1, 1], k[0, 2], k[1, 2], float(cs["translation"][2]), pitch, source)


def box_corners(center: list[float], size: list[float], rotation: list[float]) -> np.ndarray:
    """3x8 corners of a nuScenes box (size = width, length, height) in its parent frame."""
    w, l, h = size
    x = l / 2 * np.array([1, 1, 1, 1, -1, -1, -1, -1])
    y = w / 2 * np.array([1, -1, -1, 1, 1, -1, -1, 1])
    z = h / 2 * np.array([1, 1, -1, -1, 1, 1, -1, -1])
    return quat_to_matrix(rotation) @ np.vstack([x, y, z]) + np.asarray(center, float)[:, None]


def project_box(ann: dict, pose: dict, cs: dict, width: int, height: int) -> Box | None:
    """The 2D box of a global 3D box in one camera image (None when it is behind the camera or outside)."""
    pts = box_corners(ann["translation"], ann["size"], ann["rotation"])
    pts = quat_to_matrix(pose["rotation"]).T @ (pts - np.asarray(pose["translation"], float)[:, None])
    pts = quat_to_matrix(cs["rotation"]).T @ (pts - np.asarray(cs["translation"], float)[:, None])
    front = pts[2] > 0.1
    if not front.any():
        return None
    uv = np.asarray(cs["camera_intrinsic"], float) @ pts[:, front]
    uv = uv[:2] / uv[2]
    x1, y1 = max(float(uv[0].min()), 0.0), max(float(uv[1].min()), 0.0)
    x2, y2 = min(float(uv[0].max()), float(width)), min(float(uv[1].max()), float(height))
    return Box.from_xyxy(x1, y1, x2, y2) if x2 - x1 > 1 and y2 - y1 > 1 else None


def _conditions(text: str) -> dict:
    t = text.lower()
    out = {"timeofday": "night" if "night" in t else "daytime"}
    if "rain" in t:
        out["weather"] = "rainy"
    return out


def read_nuscenes(root: str | Path, *, version: str = "v1.0-mini", class_map: dict[str, str] | None = None
                  ) -> DatasetSplit:
    root = Path(root)
    t, by = _tables(root, version, ("sample_data", "calibrated_sensor", "sensor", "ego_pose", "sample", "scene",
                                    "sample_annotation", "instance", "category", "visibility", "log"))
    sensors = by.get("sensor", {})
    anns_by_sample = _group(t["sample_annotation"], "sample_token")
    cats = Categories(tuple(c.get("name", "") for c in t["category"]), class_map)  # the dataset's own table
    records, anns, problems = [], [], []
    for sd in t["sample_data"]:
        cs = by.get("calibrated_sensor", {}).get(sd.get("calibrated_sensor_token"))
        if not sd.get("is_key_frame") or cs is None or not cs.get("camera_intrinsic"):
            continue  # sweeps and non-camera sensors (lidar, radar) carry no images to label
        pose = by.get("ego_pose", {}).get(sd.get("ego_pose_token"))
        sample = by.get("sample", {}).get(sd.get("sample_token"), {})
        scene = by.get("scene", {}).get(sample.get("scene_token"), {})
        if pose is None:
            problems.append(f"sample_data {sd['token']}: no ego pose; skipped")
            continue
        image_id = len(records) + 1
        w, h = int(sd["width"]), int(sd["height"])
        channel = sensors.get(cs.get("sensor_token"), {}).get("channel", "camera")
        attrs = {"scene": scene.get("name", sd.get("sample_token", "")), "channel": channel,
                 "source": f"nuscenes:{sd['filename']}", "camera": camera_from_sensor(cs, "nuscenes-calib"),
                 "ego_pose": {"translation": pose["translation"], "rotation": pose["rotation"]},
                 "timestamp": sd.get("timestamp"), **_conditions(scene.get("description", ""))}
        for a in anns_by_sample.get(sd.get("sample_token"), []):
            box = project_box(a, pose, cs, w, h)
            if box is None:
                continue
            inst = by.get("instance", {}).get(a.get("instance_token"), {})
            name = by.get("category", {}).get(inst.get("category_token"), {}).get("name", "unknown")
            vis = by.get("visibility", {}).get(a.get("visibility_token"), {}).get("level")
            anns.append(Annotation(len(anns) + 1, image_id, cats.id(name, problems, f"sample_annotation {a['token']}"),
                                   box, attributes={"visibility": vis, "num_lidar_pts": a.get("num_lidar_pts"),
                                                    "box_source": "projected-3d"}))
        records.append(ImageRecord(image_id, sd["filename"], w, h, attrs))
    ds = Dataset(tuple(records), tuple(anns), cats.categories(),
                 info={"source": str(root), "format": "nuscenes", "version": version, "problems": problems})
    return DatasetSplit(ds, root)


def read_nuimages(root: str | Path, *, version: str = "v1.0-mini", class_map: dict[str, str] | None = None
                  ) -> DatasetSplit:
    root = Path(root)
    t, by = _tables(root, version, ("sample_data", "calibrated_sensor", "sensor", "object_ann", "category",
                                    "attribute", "sample", "log"))
    obj_by_sd = _group(t["object_ann"], "sample_data_token")
    cats = Categories(tuple(c.get("name", "") for c in t["category"]), class_map)  # the dataset's own table
    records, anns, problems = [], [], []
    for sd in t["sample_data"]:
        if not sd.get("is_key_frame"):
            continue
        image_id = len(records) + 1
        w, h = int(sd["width"]), int(sd["height"])
        attrs: dict = {"scene": sd.get("sample_token", sd["token"]), "source": f"nuimages:{sd['filename']}"}
        cs = by.get("calibrated_sensor", {}).get(sd.get("calibrated_sensor_token"))
        if cs is not None and cs.get("camera_intrinsic"):
            attrs["camera"] = camera_from_sensor(cs, "nuimages-calib")
        log = by.get("log", {}).get(by.get("sample", {}).get(sd.get("sample_token"), {}).get("log_token"), {})
        attrs.update(_conditions(log.get("location", "") + " " + log.get("description", "")))
        for o in obj_by_sd.get(sd["token"], []):
            x1, y1, x2, y2 = (float(v) for v in o["bbox"])
            box = Box.from_xyxy(x1, y1, x2, y2).clip(w, h)
            if box.w <= 0 or box.h <= 0:
                problems.append(f"object_ann {o['token']}: empty box {o['bbox']}")
                continue
            name = by.get("category", {}).get(o.get("category_token"), {}).get("name", "unknown")
            attr_names = [by.get("attribute", {}).get(tok, {}).get("name", tok) for tok in o.get("attribute_tokens", [])]
            anns.append(Annotation(len(anns) + 1, image_id, cats.id(name, problems, f"object_ann {o['token']}"), box,
                                   attributes={"attributes": attr_names} if attr_names else {}))
        records.append(ImageRecord(image_id, sd["filename"], w, h, attrs))
    ds = Dataset(tuple(records), tuple(anns), cats.categories(),
                 info={"source": str(root), "format": "nuimages", "version": version, "problems": problems})
    return DatasetSplit(ds, root)


NUSCENES = Format("nuscenes", "the dataset root (samples/, the version's table folder)",
                  lambda path, images_root=None, **options: read_nuscenes(path, **options),
                  options=("version", "class_map"))
NUIMAGES = Format("nuimages", "the dataset root (samples/, the version's table folder)",
                  lambda path, images_root=None, **options: read_nuimages(path, **options),
                  options=("version", "class_map"))
