"""Hostile input is normal input: a corpus of bad files (built here) goes through a real run, users' folders
stay theirs, and first-contact errors are one line."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from roadsynth.cli import app
from tests.conftest import DATA, ROOT


def png_header_only(path, width, height):
    """A PNG whose header claims `width` x `height` (what a decompression bomb looks like before decoding)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) +
                     chunk(b"IEND", b""))


def hostile_scene_corpus(root):
    """Good CamVid frames plus one of each kind of bad item, as a COCO scene source."""
    images = root / "images"
    images.mkdir(parents=True)
    good = sorted((DATA / "camvid" / "images").glob("*.jpg"))[:4]
    records, anns = [], []
    for k, p in enumerate(good, start=1):
        shutil.copy(p, images / p.name)
        records.append({"id": k, "file_name": p.name, "width": 480, "height": 360})
    png_header_only(images / "bomb.png", 30000, 20000)  # 600 megapixels
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16), mode="I;16").save(images / "deep.png")
    Image.new("RGB", (1, 1)).save(images / "tiny.png")
    shutil.copy(good[0], images / "mismatch.jpg")
    records += [
        {"id": 10, "file_name": "bomb.png", "width": 30000, "height": 20000},
        {"id": 11, "file_name": "deep.png", "width": 64, "height": 64},
        {"id": 12, "file_name": "tiny.png", "width": 1, "height": 1},
        {"id": 13, "file_name": "mismatch.jpg", "width": 960, "height": 720},  # the file is 480x360
        {"id": 14, "file_name": "../../outside.jpg", "width": 480, "height": 360},
        {"id": 15, "file_name": "/etc/passwd", "width": 480, "height": 360},
        {"id": 16, "file_name": good[1].name, "width": 480, "height": 360, "label_map": "/etc/passwd"},
        {"id": "abc", "file_name": good[2].name, "width": 480, "height": 360},
    ]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": 2000, "iscrowd": 0},
            {"id": 1, "image_id": 2, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0}]  # duplicate id
    (root / "annotations.json").write_text(json.dumps({"images": records, "annotations": anns,
                                                       "categories": [{"id": 1, "name": "Car"}]}))
    return root


def corpus_config(tmp_path, corpus):
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    g = cfg["generate"]
    g["scenes"] = [{"name": "hostile", "format": "coco", "path": str(corpus / "annotations.json"),
                    "images_root": str(corpus / "images"), "camera": {"horizon_frac": 0.47, "height_m": 1.3},
                    "region_failure": "lower-image"}]
    g["cutouts"] = [{"kind": "weizmann", "path": str(DATA / "cutouts" / "weizmann_horse")}]
    g["insert"]["categories"] = {"horse": 1.0}
    g.update(n_images=12, chunk_size=6, max_image_pixels=10_000_000)
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_hostile_corpus_runs_through_with_one_line_per_bad_item(tmp_path):
    corpus = hostile_scene_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["generate", str(corpus_config(tmp_path, corpus)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    errors = "\n".join(f"{f['file']}: {f['error']}" for f in manifest["failures"])
    assert "bomb.png: refused: Image size (600000000 pixels) exceeds limit" in errors  # never decoded
    assert "too small to be a road frame" in errors  # the 1x1 frame
    assert "the record says 960x720 but the file is 480x360" in errors
    assert "escapes the images root" in errors and "is absolute" in errors  # ../ and /etc/passwd file names
    assert "label map ('/etc/passwd') outside the folders the config declares; refused" in errors
    assert "`id` must be an integer, but got 'abc'" in errors
    assert "duplicate id" in errors
    ds = json.loads((out / "annotations.json").read_text())
    backgrounds = {im["background"] for im in ds["images"]}
    assert "deep.png" in backgrounds  # 16-bit greyscale is used, scaled, not clipped white ...
    deep = next(im for im in ds["images"] if im["background"] == "deep.png")
    assert load_mean(out / "images" / deep["file_name"]) < 200
    first = next(im for im in ds["images"] if im["background"] == "0001TP_006690.jpg")
    assert any(a["bbox"][:2] == [10.0, 10.0] for a in ds["annotations"] if a["image_id"] == first["id"]), \
        "the first of two annotations with one id must survive"
    assert not any(Path_name(im["background"]).startswith("..") for im in ds["images"])


def load_mean(path):
    return float(cv2.imread(str(path)).mean())


def Path_name(name):  # noqa: N802 - readability in the assertion above
    return os.path.normpath(name)


def test_a_coco_scene_file_with_nothing_usable_is_one_clear_error(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"images": [], "annotations": []}))
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    cfg["generate"]["scenes"] = [{"name": "x", "format": "coco", "path": str(tmp_path / "c.json"),
                                  "images_root": str(tmp_path)}]
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "x.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "not a usable COCO file: " in result.output and "`categories`" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_a_typo_in_a_scene_path_is_one_line_and_writes_nothing(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    cfg["generate"]["scenes"][0]["path"] = str(DATA / "camvid" / "imagez")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(app, ["generate", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "imagez: images folder not found" in result.output
    assert len(result.output.strip().splitlines()) <= 2 and not (tmp_path / "out").exists()


def test_a_bad_cutout_file_or_label_map_bomb_is_one_reported_item(tmp_path):
    """Cut-out folders and label-map folders are inputs like frames: a bad file is skipped and named."""
    frames, maps, horses = tmp_path / "frames", tmp_path / "maps", tmp_path / "horses"
    frames.mkdir()
    maps.mkdir()
    for p in sorted((DATA / "camvid" / "images").glob("*.jpg"))[:3]:
        shutil.copy(p, frames / p.name)
        shutil.copy(DATA / "camvid" / "road_labels" / f"{p.stem}.png", maps / f"{p.stem}.png")
    png_header_only(maps / f"{sorted(frames.iterdir())[0].stem}.png", 30000, 20000)
    shutil.copytree(DATA / "cutouts" / "weizmann_horse", horses)
    (horses / "rgb" / "horse001.jpg").write_text("junk")
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    cfg["generate"]["scenes"] = [{"name": "lm", "format": "label_maps", "path": str(frames), "label_maps": str(maps),
                                  "camera": {"horizon_frac": 0.47, "height_m": 1.3}}]
    cfg["generate"]["cutouts"] = [{"kind": "weizmann", "path": str(horses)}]
    cfg["generate"]["insert"]["categories"] = {"horse": 1.0}
    cfg["generate"].update(n_images=2, chunk_size=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["generate", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    errors = {f["file"]: f["error"] for f in json.loads((tmp_path / "out" / "manifest.json").read_text())["failures"]}
    assert any("horse001.jpg: cannot read image" in e for e in errors.values()), errors
    assert any("cannot read label map" in e and "exceeds limit" in e for e in errors.values()), errors
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["images"] == 2


@pytest.mark.slow  # full generations into every kind of folder (34 s): the integration layer's, not the fast layer's
def test_users_folders_are_theirs(tmp_path):
    cfg = yaml.safe_load((ROOT / "configs" / "animals.yaml").read_text())
    for s in cfg["generate"]["scenes"]:
        s["path"] = str((ROOT / "configs" / s["path"]).resolve())
        if "label_maps" in s:
            s["label_maps"] = str((ROOT / "configs" / s["label_maps"]).resolve())
    for c in cfg["generate"]["cutouts"]:
        c["path"] = str((ROOT / "configs" / c["path"]).resolve())
    cfg["generate"].update(n_images=4, chunk_size=2)
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(cfg))
    cfg["generate"]["n_images"] = 2
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(yaml.safe_dump(cfg))
    run = CliRunner().invoke

    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "annotations.json").write_text("my own labels")
    (foreign / ".draft.tmp").write_text("mine")
    r = run(app, ["generate", str(small), "--out", str(foreign)])
    assert r.exit_code == 1 and "not a roadsynth output (it holds .draft.tmp, annotations.json)" in r.output
    assert (foreign / "annotations.json").read_text() == "my own labels"

    out = tmp_path / "gen"
    assert run(app, ["generate", str(small), "--out", str(out), "--engine", "local"]).exit_code == 0
    (out / ".notes.tmp").write_text("a user's temp file")
    assert run(app, ["generate", str(small), "--out", str(out), "--engine", "local"]).exit_code == 0  # resumes
    r = run(app, ["generate", str(smaller), "--out", str(out), "--engine", "local"])
    assert r.exit_code == 1 and "another config" in r.output
    r = run(app, ["generate", str(smaller), "--out", str(out), "--engine", "local", "--overwrite"])
    assert r.exit_code == 0
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000001.jpg", "000002.jpg"]  # no stale images
    assert len(list((out / "chunks").iterdir())) == 1 and (out / ".notes.tmp").exists()
    assert run(app, ["validate", str(out / "annotations.json"), "--images-root", str(out / "images")]).exit_code == 0
    shutil.copy(out / "images" / "000001.jpg", out / "images" / "000099.jpg")
    r = run(app, ["validate", str(out / "annotations.json"), "--images-root", str(out / "images")])
    assert r.exit_code == 0 and "warning: " in r.output and "000099.jpg: image file that no record names" in r.output
    r = run(app, ["validate", str(out / "annotations.json"), "--images-root", str(out / "images"), "--strict"])
    assert r.exit_code == 1


def test_overwrite_never_replaces_a_users_files(tmp_path):
    """--overwrite writes into a foreign folder, but never under a name the user's files already hold."""
    run = CliRunner().invoke
    mine = tmp_path / "holiday"
    (mine / "images").mkdir(parents=True)
    (mine / "images" / "beach.jpg").write_text("precious")
    r = run(app, ["import", "yolo", str(DATA / "deer"), "--out", str(mine), "--overwrite"])
    assert r.exit_code == 1 and "already holds images, which this import run would replace" in r.output
    assert (mine / "images" / "beach.jpg").read_text() == "precious" and not (mine / "images").is_symlink()
    (mine / "images" / "beach.jpg").rename(mine / "beach.jpg")
    (mine / "images").rmdir()
    assert run(app, ["import", "yolo", str(DATA / "deer"), "--out", str(mine), "--overwrite"]).exit_code == 0
    assert (mine / "beach.jpg").read_text() == "precious"  # the user's other files stay

    labels = tmp_path / "thesis.json"
    labels.write_text("my own labels")
    r = run(app, ["export", str(mine), "--format", "coco", "--out", str(labels)])
    assert r.exit_code == 1 and "exists" in r.output and labels.read_text() == "my own labels"
    assert run(app, ["export", str(mine), "--format", "coco", "--out", str(labels), "--overwrite"]).exit_code == 0
    assert json.loads(labels.read_text())["images"]


def test_import_copy_refuses_an_out_inside_its_source(tmp_path):
    src = tmp_path / "deer"
    shutil.copytree(DATA / "deer", src)
    r = CliRunner().invoke(app, ["import", "yolo", str(src), "--out", str(src / "images" / "imported"), "--copy"])
    assert r.exit_code == 1 and "lies inside the images folder" in r.output
    assert not (src / "images" / "imported").exists()


def test_only_roadsynth_temp_files_are_swept(tmp_path):
    from roadsynth.datasets.io import atomic_write_text
    from roadsynth.generate.resume import sweep_temp_files

    atomic_write_text(tmp_path / "a.json", "{}")
    (tmp_path / ".roadsynth-a.json.x1.tmp").write_text("half")
    (tmp_path / ".mine.tmp").write_text("user")
    assert sweep_temp_files(tmp_path) == 1 and (tmp_path / ".mine.tmp").exists()


def test_the_ui_keeps_its_rendered_images_in_a_private_folder_it_removes():
    from roadsynth.ui import private_temp_dir, remove_temp_dir

    folder = private_temp_dir()
    assert os.environ["GRADIO_TEMP_DIR"] == str(folder) and oct(folder.stat().st_mode & 0o777) == "0o700"
    (folder / "render.png").write_bytes(b"x")
    remove_temp_dir()
    assert not folder.exists()


def test_a_bomb_pillow_refuses_is_reported_as_one_line(tmp_path, monkeypatch):
    from roadsynth.datasets.io import ImageLoadError, load_image

    png_header_only(tmp_path / "b.png", 5000, 5000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own guard fires before ours
    with pytest.raises(ImageLoadError, match="b.png: refused: Image size"):
        load_image(tmp_path / "b.png", max_pixels=None)


def test_images_over_the_configured_limit_are_refused_from_the_header(tmp_path):
    from roadsynth.datasets.io import ImageLoadError, image_size

    png_header_only(tmp_path / "big.png", 4000, 3000)
    with pytest.raises(ImageLoadError, match="4000x3000 \\(12 megapixels\\), over the limit of 10 megapixels"):
        image_size(tmp_path / "big.png", max_pixels=10_000_000)
