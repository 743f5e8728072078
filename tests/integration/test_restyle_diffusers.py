"""Vehicle restyle and diffusion weather through the loading code a user with a checkpoint folder uses
(tiny random-weight img2img pipelines and a ControlNet, built and saved offline, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roadsynth.datasets.io import load_image
from roadsynth.datasets.yolo import read_yolo
from roadsynth.generators.verify import outside_mask_identical
from tests.conftest import DATA

STYLES_KW = {"min_change": 0.0, "steps": 3, "native": 64}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tiny_diffusers import save_tiny_img2img_pipeline, save_tiny_inpaint_pipeline

    root = tmp_path_factory.mktemp("tiny-img2img")
    save_tiny_img2img_pipeline(root / "sd", controlnet=root / "controlnet-canny")
    save_tiny_inpaint_pipeline(root / "inpaint")
    return root


@pytest.fixture(scope="module")
def vehicles():
    ds, root = read_yolo(DATA / "vehicles")
    names = {c.id: c.name for c in ds.categories}
    by_image = ds.annotations_by_image()
    # A frame with two or more cars big enough to restyle, and its labels.
    im = next(i for i in ds.images
              if sum(names[a.category_id] == "Car" and min(a.bbox.w, a.bbox.h) >= 40 for a in by_image.get(i.id, [])) >= 2)
    return load_image(root / im.file_name), by_image[im.id], names


@pytest.mark.slow
def test_vehicle_restyle_changes_only_inside_masks_and_relabels(models, vehicles, network_audit):
    from roadsynth.generators.restyle_diffusers import Style, VehicleRestyler

    rgb, anns, names = vehicles
    r = VehicleRestyler(str(models / "sd"), [Style("ambulance", "an ambulance", "Ambulance")], names,
                        categories=["Car"], min_box_px=40, max_objects=2, min_edge_fscore=0.0, **STYLES_KW)
    out = r.restyle(rgb, anns, np.random.default_rng(0))
    assert len(out.edits) == 2 and not out.rejected
    same, n = outside_mask_identical(rgb, out.image, out.mask)
    assert same, f"{n} pixels changed outside the vehicle masks"
    assert (out.image != rgb).any(axis=2)[out.mask].mean() > 0.3  # the masks really were repainted
    ambulance = next(i for i, n in names.items() if n == "Ambulance")
    edited = {e["annotation_id"] for e in out.edits}
    for before, after in zip(anns, out.annotations):
        assert after.bbox == before.bbox  # geometry kept: boxes unchanged
        if before.id in edited:
            assert after.category_id == ambulance and after.provenance.method == "restyle"
            p = after.provenance.params
            assert p["style"] == "ambulance" and p["original_category"] == "Car" and p["strength"] == 0.7
            assert 0 <= p["edge_fscore"] <= 1 and p["mask_method"] in ("polygon", "grabcut", "box")
        else:
            assert after == before
    # Same seed, same pixels (a resumed run reproduces its edits).
    again = r.restyle(rgb, anns, np.random.default_rng(0))
    assert np.array_equal(again.image, out.image)
    assert network_audit.events == []


@pytest.mark.slow
def test_geometry_drift_is_refused_and_leaves_the_vehicle_alone(models, vehicles):
    from roadsynth.generators.restyle_diffusers import Style, VehicleRestyler

    rgb, anns, names = vehicles
    # Random weights repaint the crop with noise: its edges cannot match the car's outline.
    r = VehicleRestyler(str(models / "sd"), [Style("classic", "a 1960s classic car")], names, categories=["Car"],
                        min_box_px=40, max_objects=2, min_edge_fscore=0.999, **STYLES_KW)
    out = r.restyle(rgb, anns, np.random.default_rng(0))
    assert not out.edits and len(out.rejected) == 2
    assert all(x["reason"].startswith("geometry drift: edge F-score") for x in out.rejected)
    assert np.array_equal(out.image, rgb) and list(out.annotations) == list(anns)


@pytest.mark.slow
def test_controlnet_folder_is_loaded_and_conditions_on_edges(models, vehicles):
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    from roadsynth.generators.restyle_diffusers import Style, VehicleRestyler

    rgb, anns, names = vehicles
    r = VehicleRestyler(str(models / "sd"), [Style("police", "a police car", "Car")], names, categories=["Car"],
                        min_box_px=40, max_objects=1, min_edge_fscore=0.0, controlnet=str(models / "controlnet-canny"),
                        **STYLES_KW)
    assert isinstance(r.pipe, StableDiffusionControlNetImg2ImgPipeline) and r.controlnet
    out = r.restyle(rgb, anns, np.random.default_rng(1))
    assert len(out.edits) == 1 and outside_mask_identical(rgb, out.image, out.mask)[0]
    edited = next(a for a in out.annotations if a.provenance is not None)
    assert edited.provenance.params["controlnet"] is True and names[edited.category_id] == "Car"  # style keeps the class


@pytest.mark.slow
def test_inpainting_checkpoint_is_refused_with_a_clear_error(models):
    from roadsynth.generators.restyle_diffusers import load_img2img_pipeline

    with pytest.raises(ValueError, match="img2img needs a 4-channel UNet, but this checkpoint's UNet has 9 input channels"):
        load_img2img_pipeline(str(models / "inpaint"))
    with pytest.raises(FileNotFoundError, match="never downloads weights"):
        load_img2img_pipeline(str(models / "missing"))


@pytest.mark.slow
def test_diffusion_weather_keeps_size_labels_and_detail(models):
    import cv2

    from roadsynth.generators.restyle_diffusers import DiffusionWeather

    rgb = load_image(DATA / "camvid" / "images" / "0016E5_04440.jpg")
    w = DiffusionWeather(str(models / "sd"), "fog", "a road in dense fog", steps=3, work_px=64, detail=1.0)
    out = w.restyle(rgb, [], np.random.default_rng(0))
    assert out.image.shape == rgb.shape and out.tags["condition"] == "fog"
    assert out.tags["condition_source"]["work_size"] == [64, 48]
    # The frame's own fine detail is carried over: edges of the output line up with the input's.
    e_in, e_out = (cv2.Canny(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), 60, 160) > 0 for x in (rgb, out.image))
    assert (e_in & cv2.dilate(e_out.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)).sum() / e_in.sum() > 0.5


@pytest.mark.slow
def test_restyle_cli_with_tiny_checkpoint(models, tmp_path):
    from typer.testing import CliRunner

    from roadsynth.cli import app
    from roadsynth.datasets.coco import read_coco

    cfg = tmp_path / "restyle.yaml"
    cfg.write_text(f"""
name: restyle
generate:
  seed: 0
  n_images: 3
  scenes:
  - {{name: vehicles, format: yolo, path: {DATA}/vehicles, camera: {{horizon_frac: 0.5}},
     filter: {{require_categories: [Car], min_box_area: 2500}}}}
  restyle:
    method: diffusion
    model: {models / "sd"}
    styles: [{{name: ambulance, prompt: an ambulance on the road, category: Ambulance}}]
    categories: [Car]
    frame_prob: 1.0
    max_objects: 1
    min_box_px: 40
    steps: 3
    native: 64
    min_edge_fscore: 0.0
    min_change: 0.0
  weather: {{conditions: {{rain: 1.0}}, severity: [1, 1]}}
""")
    r = CliRunner().invoke(app, ["restyle", str(cfg), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["restyled_objects"] == 3 and manifest["conditions"] == {"rain": 3}
    ds = read_coco(tmp_path / "out" / "annotations.json")
    restyled = [a for a in ds.annotations if a.provenance is not None]
    assert len(restyled) == 3
    assert {ds.categories[a.category_id - 1].name for a in restyled} == {"Ambulance"}
    assert all(a.provenance.method == "restyle" and a.attributes["restyled"] == "ambulance" for a in restyled)
    assert all(im.attributes["restyle"]["edits"] for im in ds.images)
