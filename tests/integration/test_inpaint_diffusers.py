"""Diffusion inpainting through the same loading code a user with a checkpoint folder uses (tiny random
weights, built and saved offline, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Box
from roadsynth.generators.base import Insertion, Rejection
from roadsynth.generators.verify import outside_mask_identical
from roadsynth.geometry.records import Placement
from tests.conftest import DATA

PROMPTS = {"deer": "a deer standing on the road", "cow": "a cow on the road"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.tiny_diffusers import save_tiny_inpaint_pipeline

    return save_tiny_inpaint_pipeline(tmp_path_factory.mktemp("tiny-sd-inpaint"))


@pytest.fixture(scope="module")
def frame():
    import cv2

    rgb = load_image(DATA / "camvid" / "images" / "0016E5_04440.jpg")
    return cv2.resize(rgb, (160, 120), interpolation=cv2.INTER_AREA)  # tiny model: keep windows <= 128 px


def place(cat: str, x: float, bottom: float, h: float) -> Placement:
    return Placement(cat, Box(x - 0.7 * h, bottom - h, 1.4 * h, h), (x, bottom))


@pytest.mark.slow
def test_inpaint_from_saved_folder_keeps_outside_pixels_identical(model_dir, frame, network_audit):
    from roadsynth.generators.inpaint_diffusers import InpaintInserter

    ins = InpaintInserter(model_dir, PROMPTS, steps=2, native=64, context=2.0, min_window_px=48, batch_size=2,
                          device="cpu")
    placements = [place("deer", 40, 100, 24), place("cow", 110, 90, 20), place("unicorn", 80, 110, 10)]
    out, results = ins.insert(frame, placements, np.random.default_rng(0))
    assert isinstance(results[2], Rejection) and "no prompt" in results[2].reason
    allowed = np.zeros(frame.shape[:2], bool)
    for r in results[:2]:
        x1, y1, w, h = (int(v) for v in r.placement.box.xywh())
        allowed[max(y1 - 1, 0) : y1 + h + 2, max(x1 - 1, 0) : x1 + w + 2] = True
        if isinstance(r, Insertion):
            assert r.provenance.method == "inpaint" and r.provenance.source == str(model_dir)
            assert r.provenance.params["prompt"] == PROMPTS[r.placement.category]
            p = r.placement.box
            assert p.x - 1 <= r.box.x and r.box.x2 <= p.x2 + 1 and p.y - 1 <= r.box.y and r.box.y2 <= p.y2 + 1
    assert any(isinstance(r, Insertion) for r in results[:2]), results
    identical, n = outside_mask_identical(frame, out, allowed)
    assert identical, f"{n} pixels changed outside the object boxes"
    assert network_audit.events == []


@pytest.mark.slow
def test_verifier_rejects_objects_where_nothing_was_drawn(model_dir, frame):
    from roadsynth.generators.inpaint_diffusers import InpaintInserter

    ins = InpaintInserter(model_dir, PROMPTS, steps=1, native=64, min_window_px=48, device="cpu")
    real_pipe = ins.pipe

    class Unchanged:
        """The real pipeline's interface, returning its input: a generator that draws nothing."""

        vae_scale_factor, unet = real_pipe.vae_scale_factor, real_pipe.unet

        def __call__(self, image, **kwargs):
            return type("Out", (), {"images": [np.asarray(im, np.float32) / 255 for im in image]})

    ins.pipe = Unchanged()
    out, [r] = ins.insert(frame, [place("deer", 40, 100, 24)], np.random.default_rng(0))
    assert isinstance(r, Rejection) and r.reason.startswith("missing")
    assert np.array_equal(out, frame)


@pytest.mark.slow
def test_batches_across_frames_and_halves_on_out_of_memory(model_dir, frame):
    import torch

    from roadsynth.generators.inpaint_diffusers import InpaintInserter

    ins = InpaintInserter(model_dir, PROMPTS, steps=1, native=64, min_window_px=48, batch_size=4, device="cpu")
    real_pipe, calls = ins.pipe, []

    def flaky(**kwargs):
        calls.append(len(kwargs["prompt"]))
        if len(kwargs["prompt"]) > 1:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real_pipe(**kwargs)

    ins.pipe = type("P", (), {"__call__": staticmethod(flaky), "vae_scale_factor": 2, "unet": real_pipe.unet})()
    outs = ins.insert_many([frame, frame], [[place("deer", 40, 100, 24)], [place("cow", 110, 90, 20)]],
                           [np.random.default_rng(0), np.random.default_rng(1)], [{}, {}])
    assert calls == [2, 1, 1] and ins.last_batch_size == 1
    assert len(outs) == 2 and all(len(r) == 1 for _, r in outs)


@pytest.mark.slow
def test_threads_sharing_the_cached_pipeline_take_turns(model_dir, frame):
    """A threads task runner runs chunks of one process side by side, and they share its cached pipeline."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from roadsynth.generators.inpaint_diffusers import InpaintInserter

    a = InpaintInserter(model_dir, PROMPTS, steps=1, native=64, min_window_px=48, device="cpu")
    b = InpaintInserter(model_dir, PROMPTS, steps=1, native=64, min_window_px=48, device="cpu")
    assert a.pipe is b.pipe  # loaded once per process
    real_pipe, active, overlaps, guard = a.pipe, [0], [0], threading.Lock()

    def watched(**kwargs):
        with guard:
            active[0] += 1
            overlaps[0] += active[0] > 1
        time.sleep(0.05)  # widen the window a second caller would hit
        try:
            return real_pipe(**kwargs)
        finally:
            with guard:
                active[0] -= 1

    shim = type("P", (), {"__call__": staticmethod(watched), "vae_scale_factor": 2, "unet": real_pipe.unet})()
    a.pipe = b.pipe = shim
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda i: (a, b)[i % 2].insert(frame, [place("deer", 40, 100, 24)],
                                                              np.random.default_rng(i)), range(4)))
    assert overlaps[0] == 0 and len(runs) == 4


def test_missing_model_and_bad_arguments_get_clear_errors(tmp_path):
    from roadsynth.generators.inpaint_diffusers import InpaintInserter, load_inpaint_pipeline

    with pytest.raises(FileNotFoundError, match="roadsynth never downloads weights"):
        load_inpaint_pipeline("runwayml/stable-diffusion-inpainting")
    with pytest.raises(ValueError, match=r"`strength` must be in \[0, 1\], but got 1.7"):
        InpaintInserter(object(), PROMPTS, strength=1.7)


@pytest.mark.slow
def test_generate_with_inpaint_method_from_config(model_dir, tmp_path):
    import json

    from typer.testing import CliRunner

    from roadsynth.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""
name: inpaint-smoke
generate:
  n_images: 3
  chunk_size: 3
  scenes: [{{name: udacity, format: folder, path: {DATA}/udacity_lanelines/images,
             camera: {{horizon_frac: 0.6, height_m: 1.4}}}}]
  cutouts: [{{kind: msrc, path: {DATA}/cutouts/msrc_v2_animals, categories: [cow]}}]
  insert:
    method: inpaint
    categories: {{cow: 1.0}}
    objects_per_image: [1, 1]
    inpaint: {{model: {model_dir}, prompts: {{cow: a cow}}, steps: 1, native: 64, min_window_px: 48,
              context: 1.5, device: cpu}}
  placement: {{max_distance_m: 200, min_pixel_height: 8}}
""")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["generate", str(cfg), "--out", str(out), "--engine", "local"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    d = json.loads((out / "annotations.json").read_text())
    assert len(d["images"]) == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failures"] == []
    made = [a for a in d["annotations"] if "provenance" in a]
    rejected = [x for im in d["images"] for x in im["rejected"]]
    assert len(made) + len(rejected) == 3  # every requested object is either a verified label or a reason
    for a in made:
        assert a["provenance"]["method"] == "inpaint" and a["provenance"]["prompt"] == "a cow"

    # The UI's "Ours (inpainting)" goes through the same chunk code, with the typed prompt and strength.
    from roadsynth.config import load_config
    from roadsynth.review import Studio

    studio = Studio(load_config(cfg), tmp_path / "ui-session")
    with pytest.raises(ValueError, match=r"`strength` x `steps` must give at least one denoising step, but got 0.6 x 1"):
        studio.generate(0, 1, "Ours (inpainting)", prompt="a brown cow, photo", strength=0.6)
    review = studio.generate(0, 1, "Ours (inpainting)", prompt="a brown cow, photo", strength=1.0)
    im = review.dataset.images[0]
    objs = review.objects(0)
    assert len(objs) + len(im.attributes["rejected"]) == 1
    for o in objs:
        assert o["method"] == "inpaint" and o["prompt"] == "a brown cow, photo"
    gen = [a for a in review.dataset.annotations if a.generated]
    assert all(a.provenance.params["strength"] == 1.0 for a in gen)
    with pytest.raises(ValueError, match="`method` must be Original, Paste or Ours"):
        studio.generate(0, 1, "Magic")


@pytest.mark.slow
def test_nearer_inpainted_object_trims_the_farther_ones_mask(model_dir, frame):
    from roadsynth.generators.inpaint_diffusers import InpaintInserter

    ins = InpaintInserter(model_dir, PROMPTS, steps=1, native=64, min_window_px=48, batch_size=2, mask_shape="box",
                          device="cpu")
    far, near = place("deer", 70, 90, 30), place("cow", 80, 100, 26)  # near: lower contact point, drawn last
    out, (rf, rn) = ins.insert(frame, [far, near], np.random.default_rng(1))
    assert isinstance(rn, Insertion), rn
    assert not rn.mask_is_silhouette  # a box region is not an instance mask: no segmentation gets written
    if isinstance(rf, Rejection):  # fully hidden is a legal outcome, but then it must say so
        assert "occluded" in rf.reason or rf.reason.startswith(("missing", "too small"))
        return
    mf, mn = rf.frame_mask(frame.shape), rn.frame_mask(frame.shape)
    assert mf.any() and not (mf & mn).any()
    ys, xs = np.nonzero(mf)
    assert (rf.box.x, rf.box.y, rf.box.x2, rf.box.y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert rf.scores.get("occluded_by_new") is True
