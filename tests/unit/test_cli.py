import json

import numpy as np
from typer.testing import CliRunner

from roadsynth.cli import app
from roadsynth.datasets.io import save_image_atomic
from tests.conftest import DATA, ROOT

runner = CliRunner()


def _coco(tmp_path, bbox):
    save_image_atomic(tmp_path / "img" / "a.jpg", np.zeros((30, 40, 3), np.uint8))
    coco = {"images": [{"id": 1, "file_name": "a.jpg", "width": 40, "height": 30}],
            "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": bbox, "area": 1.0, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "deer"}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    return tmp_path / "a.json"


def test_validate_exit_codes_and_json(tmp_path):
    good = _coco(tmp_path, [1, 1, 5, 5])
    r = runner.invoke(app, ["validate", str(good), "--images-root", str(tmp_path / "img")])
    assert r.exit_code == 0, r.output
    bad = _coco(tmp_path, [1, 1, -5, 5])
    r = runner.invoke(app, ["validate", str(bad), "--images-root", str(tmp_path / "img")])
    assert r.exit_code == 1
    assert r.stdout.strip() == "annotation 5: bbox has zero or negative size w=-5 h=5"
    r = runner.invoke(app, ["validate", str(bad), "--images-root", str(tmp_path / "img"), "--json"])
    assert r.exit_code == 1
    assert json.loads(r.stdout) == [{"where": "annotation 5", "message": "bbox has zero or negative size w=-5 h=5",
                                     "level": "error"}]


def test_import_yolo_gives_a_valid_coco_folder(tmp_path):
    r = runner.invoke(app, ["import", "yolo", str(DATA / "deer"), "--out", str(tmp_path / "deer")])
    assert r.exit_code == 0, r.output
    d = json.loads((tmp_path / "deer" / "annotations.json").read_text())
    assert len(d["images"]) == 25 and len(d["annotations"]) == 39 and d["categories"][0]["name"] == "deer"
    r = runner.invoke(app, ["validate", str(tmp_path / "deer" / "annotations.json"), "--images-root",
                            str(tmp_path / "deer" / "images")])
    assert r.exit_code == 0, r.output


def test_generate_local_engine_writes_a_valid_dataset(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
name: t
generate:
  n_images: 3
  chunk_size: 2
  scenes: [{{name: camvid, format: label_maps, path: {DATA}/camvid/images, label_maps: {DATA}/camvid/road_labels,
             object_values: {{8: Car}}, camera: {{horizon_frac: 0.47, height_m: 1.3}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [sheep]}}]
  insert: {{categories: {{sheep: 1.0}}, objects_per_image: [2, 2]}}
""")
    out = tmp_path / "out"
    r = runner.invoke(app, ["generate", str(cfg), "--out", str(out), "--engine", "local"])
    assert r.exit_code == 0, r.output
    first = (out / "annotations.json").read_bytes()
    r = runner.invoke(app, ["validate", str(out / "annotations.json"), "--images-root", str(out / "images")])
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["images"] == 3 and manifest["generated_objects"] >= 1 and manifest["failures"] == []
    # Inserted objects carry their visible-pixel mask as polygons, consistent with their tight box.
    from pycocotools import mask as mask_utils

    d = json.loads(first)
    sizes = {im["id"]: (im["height"], im["width"]) for im in d["images"]}
    generated = [a for a in d["annotations"] if "provenance" in a]
    assert generated and all(a["segmentation"] for a in generated)
    for a in generated:
        m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], *sizes[a["image_id"]])))
        ys, xs = np.nonzero(m)
        x, y, w, h = a["bbox"]
        assert abs(xs.min() - x) <= 1 and abs(ys.min() - y) <= 1 and abs(xs.max() + 1 - (x + w)) <= 1, (a["bbox"], xs.min(), ys.min())
        assert 0 < a["area"] <= w * h and abs(m.sum() - a["area"]) <= 0.35 * a["area"]
    assert (out / "config.yaml").exists()
    # Re-running over the same folder resumes (chunks kept) and reproduces the same annotations byte for byte.
    (out / "annotations.json").unlink()
    r = runner.invoke(app, ["generate", str(cfg), "--out", str(out), "--engine", "local"])
    assert r.exit_code == 0 and (out / "annotations.json").read_bytes() == first
    # A fresh run with the same seed writes the same dataset.
    r = runner.invoke(app, ["generate", str(cfg), "--out", str(tmp_path / "out2"), "--engine", "local"])
    assert (tmp_path / "out2" / "annotations.json").read_bytes() == first


def test_bad_config_exits_2_with_file_named(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("generate: {}\n")
    r = runner.invoke(app, ["generate", str(cfg), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "bad.yaml: invalid config" in r.output


def test_export_plain_coco_opens_in_pycocotools(tmp_path):
    """`roadsynth export`: standard keys, flat scalar attributes, curated decisions respected."""
    from pycocotools.coco import COCO

    from roadsynth.config import load_config
    from roadsynth.generate import generate_dataset
    from roadsynth.review import Review

    cfg = load_config(ROOT / "configs" / "animals.yaml")
    cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"n_images": 3, "chunk_size": 3})})
    generate_dataset(cfg, tmp_path / "gen")
    review = Review(tmp_path / "gen")
    gen_ids = [a.id for a in review.dataset.annotations if a.generated]
    review.decide(gen_ids[0], accept=False)
    for curated in (False, True):
        out = tmp_path / f"plain_{curated}.json"
        r = CliRunner().invoke(app, ["export", str(tmp_path / "gen"), "--out", str(out)] + (["--curated"] if curated else []))
        assert r.exit_code == 0, r.output
        d = json.loads(out.read_text())
        for a in d["annotations"]:
            assert set(a) == {"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "attributes"}
            assert all(isinstance(v, (str, int, float, bool)) for v in a["attributes"].values())
        for im in d["images"]:
            assert all(isinstance(v, (str, int, float, bool)) for v in im.values())
        generated = [a for a in d["annotations"] if a["attributes"]["generated"]]
        assert all(a["attributes"]["method"] == "paste" and a["attributes"]["source"] for a in generated)
        assert (gen_ids[0] in {a["id"] for a in d["annotations"]}) is not curated
        coco = COCO(str(out))
        assert len(coco.getAnnIds()) == len(d["annotations"]) and len(coco.getImgIds()) == 3


def test_a_folder_source_without_an_ego_mask_warns_once_and_the_manifest_records_it(tmp_path):
    frames = DATA / "udacity_lanelines" / "images"
    cfg = tmp_path / "c.yaml"
    body = f"""
name: t
generate:
  n_images: 1
  chunk_size: 1
  scenes: [{{name: highway, format: folder, path: {frames}, camera: {{horizon_frac: 0.6, height_m: 1.4}}{{extra}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [sheep]}}]
  insert: {{categories: {{sheep: 1.0}}, objects_per_image: [1, 1]}}
"""
    cfg.write_text(body.replace("{extra}", ""))
    r = runner.invoke(app, ["generate", str(cfg), "--out", str(tmp_path / "a"), "--engine", "local"])
    assert r.exit_code == 0, r.output
    assert r.output.count("warning: scene source `highway` (folder) has no `ego` mask") == 1
    assert "ego_in_view: false" in r.output
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert len(manifest["ego_warnings"]) == 1 and "highway" in manifest["ego_warnings"][0]
    cfg.write_text(body.replace("{extra}", ", ego_in_view: false"))
    r = runner.invoke(app, ["generate", str(cfg), "--out", str(tmp_path / "b"), "--engine", "local"])
    assert r.exit_code == 0 and "no `ego` mask" not in r.output, r.output
