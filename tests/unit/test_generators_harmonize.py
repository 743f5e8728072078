"""Weight-free appearance matching (generators/harmonize.py), step by step, and the realism scores that
audit it (generators/realism.py)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Box
from roadsynth.generators import harmonize as hz
from roadsynth.generators.paste import PasteInserter
from roadsynth.generators.realism import RealismLimits, noise_sigma, object_scores, summarize
from tests.conftest import DATA
from tests.unit.conftest import place

NIGHT = DATA / "dashcam" / "images" / "culane_night__nightblur05312336_0004.MP4__01410.jpg"


def textured(h=80, w=80, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(60, 200, (h // 8, w // 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return img


def test_tone_moves_a_bright_object_towards_dark_surroundings_by_a_gain():
    obj = np.full((40, 40, 3), 200, np.uint8)
    obj[::4] = 230  # some texture
    inside = np.ones((40, 40), bool)
    ring = np.full((500, 3), 30, np.uint8)
    ring[::3] = 36  # dark surroundings, flatter than the object (relative contrast 0.09 vs 0.06)
    out = hz.match_tone_color(obj, inside, ring, hz.MatchConfig())
    y0 = cv2.cvtColor(obj, cv2.COLOR_RGB2GRAY).astype(float)
    y = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(float)
    ry = ring.astype(float) @ [0.299, 0.587, 0.114]
    kept = math.log((y.mean() + 1) / (ry.mean() + 1))
    assert 0 < kept <= 0.35 + 0.02  # brighter than the surroundings, by about natural variation at most
    # As an exposure change would: darker, with the object's own relative contrast (not the road's).
    assert y.std() / y.mean() == pytest.approx(y0.std() / y0.mean(), rel=0.1)
    # contrast_follow moves the relative contrast (in log) towards the ring's.
    flat = cv2.cvtColor(hz.match_tone_color(obj, inside, ring, hz.MatchConfig(contrast_follow=1.0)),
                        cv2.COLOR_RGB2GRAY).astype(float)
    assert flat.std() / flat.mean() == pytest.approx(ry.std() / ry.mean(), rel=0.15)
    off = hz.match_tone_color(obj, inside, ring, hz.MatchConfig(tone=False, color=False))
    assert np.abs(off.astype(int) - obj).max() <= 1
    with pytest.raises(ValueError, match="`contrast_follow` must be in"):
        hz.MatchConfig(contrast_follow=1.5)


def test_colour_shift_is_one_bounded_shift_that_never_rotates_hues():
    obj = np.zeros((30, 30, 3), np.uint8)
    obj[:, :15] = (200, 60, 60)  # a red half and a blue half
    obj[:, 15:] = (60, 60, 200)
    inside = np.ones((30, 30), bool)
    ring = np.full((400, 3), (230, 130, 60), np.uint8)  # strongly warm surroundings
    cfg = hz.MatchConfig(tone=False)
    lab0 = cv2.cvtColor(obj, cv2.COLOR_RGB2LAB).astype(float)
    lab1 = cv2.cvtColor(hz.match_tone_color(obj, inside, ring, cfg), cv2.COLOR_RGB2LAB).astype(float)
    shift = (lab1 - lab0)[..., 1:].reshape(-1, 2)
    assert np.linalg.norm(shift.mean(0)) <= cfg.max_color_shift + 1.5
    assert np.abs(shift - shift.mean(0)).max() <= 2.5  # the same shift everywhere: red stays red, blue stays blue


def test_sharpness_estimate_orders_blur_and_blur_inside_never_bleeds_the_background():
    img = textured(160, 160)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    region = np.ones(gray.shape, bool)
    crisp = hz.edge_blur_sigma(gray, region)
    soft = hz.edge_blur_sigma(cv2.GaussianBlur(gray, (0, 0), 2.0), region)
    assert crisp is not None and soft is not None and soft > crisp + 0.8
    alpha = np.zeros((60, 60), np.float32)
    alpha[20:40, 20:40] = 1
    obj = np.zeros((60, 60, 3), np.uint8)
    obj[20:40, 20:40] = 200
    out = hz.blur_inside(obj, alpha, 2.0)
    assert out[20:40, 20:40].min() >= 195  # no black background mixed into the object's edge


def test_noise_is_added_only_up_to_the_surroundings_level():
    flat = np.full((80, 80, 3), 120, np.uint8)
    inside = np.ones((80, 80), bool)
    rng = np.random.default_rng(0)
    noisy = hz.add_noise(flat, inside, 6.0, rng)
    s = noise_sigma(cv2.cvtColor(noisy, cv2.COLOR_RGB2GRAY))
    assert 4.5 < s < 7.5
    assert hz.add_noise(noisy, inside, 3.0, rng) is noisy  # already noisier than the scene: left alone


def test_noise_drawn_for_a_window_is_the_noise_the_whole_image_would_get():
    # The paste inserter matches an object in a window around its box: the window must get exactly the
    # noise a whole-crop draw gives it (same seed, same pixels), or output would depend on the window.
    img = np.full((60, 90, 3), 120, np.uint8)
    inside = np.zeros((60, 90), bool)
    inside[20:45, 30:70] = True
    win = (slice(15, 50), slice(25, 80))
    whole = hz.add_noise(img, inside, 6.0, np.random.default_rng(3))
    part = hz.add_noise(img[win], inside[win], 6.0, np.random.default_rng(3), draw=(img.shape[:2], win))
    assert np.array_equal(part, whole[win]) and not np.array_equal(part, img[win])


def test_float_to_uint8_rounds_half_to_even_and_clips_like_numpy():
    x = np.array([[-300.0, -0.6, -0.5, -0.4, 0.0, 0.5, 1.5, 2.5, 127.49, 254.5, 255.4, 255.5, 999.0]], np.float32)
    assert np.array_equal(hz._to_u8(x), np.clip(np.round(x), 0, 255).astype(np.uint8))
    x3 = np.random.default_rng(0).uniform(-20, 280, (16, 16, 3)).astype(np.float32)
    assert np.array_equal(hz._to_u8(x3), np.clip(np.round(x3), 0, 255).astype(np.uint8))


def test_jpeg_texture_follows_the_frame_grid_and_quality_is_read_from_the_file(tmp_path):
    crop = textured(48, 64)
    rt = hz.jpeg_roundtrip(crop, (13, 5), 40)
    assert rt.shape == crop.shape and 1 < np.abs(rt.astype(int) - crop).mean() < 25
    from PIL import Image

    for q in (60, 85, 95):
        Image.fromarray(textured()).save(tmp_path / f"q{q}.jpg", quality=q)
        assert abs(hz.jpeg_quality(tmp_path / f"q{q}.jpg") - q) <= 3
    Image.fromarray(textured()).save(tmp_path / "p.png")
    assert hz.jpeg_quality(tmp_path / "p.png") is None


def test_alpha_refinement_removes_a_background_fringe_at_the_rim():
    rgb = np.zeros((60, 60, 3), np.uint8)
    alpha = np.zeros((60, 60), np.float32)
    cv2.circle(alpha, (30, 30), 20, 1.0, -1)
    rgb[alpha > 0] = (140, 90, 60)  # a brown animal ...
    ring = (alpha > 0) & ~cv2.erode((alpha > 0).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=2).astype(bool)
    rgb[ring] = (40, 200, 40)  # ... whose mask caught a rim of grass
    out, a = hz.refine_alpha(rgb, alpha)
    green = (out[..., 1].astype(int) - out[..., 0]) > 60
    assert green[ring].mean() < 0.05 and (a >= 0).all() and (a <= 1).all()
    assert not a[0].any() and a[30, 30] > 0.95


def test_upscaling_past_the_limit_is_refused_with_its_reason(bank):
    frame = load_image(DATA / "camvid" / "images" / "0016E5_04440.jpg")
    small = min(bank.by_category("sheep"), key=lambda c: c.rgb.shape[0])
    p = place("sheep", 240, 350, small.rgb.shape[0] * 5)
    p = p.__class__(**{**p.__dict__, "params": {"cutout_id": small.id}})
    _, [r] = PasteInserter(bank).insert(frame, [p], np.random.default_rng(0))
    assert r.__class__.__name__ == "Rejection" and "max_upscale 3" in r.reason


def test_matching_brings_a_daylight_cutout_close_to_a_night_scene(bank):
    frame = (load_image(NIGHT) * 0.35).astype(np.uint8)  # night, and no headlight cone to stand in
    h, w = frame.shape[:2]
    placements = [place("cow", w * 0.5, h * 0.62, 120), place("horse", w * 0.3, h * 0.6, 110)]
    scores = {}
    for name, m in (("matched", hz.MatchConfig()), ("as-cut", None)):
        _, results = PasteInserter(bank, match=m).insert(frame, placements, np.random.default_rng(1), jpeg_quality=75)
        scores[name] = [r.scores["log_luminance"] for r in results if r.__class__.__name__ == "Insertion"]
    # Matched, an object in an unlit patch can become too dark to see: the verifier then refuses it.
    assert len(scores["as-cut"]) == 2 and len(scores["matched"]) >= 1
    assert max(abs(v) for v in scores["matched"]) < 0.4 < min(abs(v) for v in scores["as-cut"])


def test_realism_scores_read_luminance_sharpness_and_noise_against_the_ring():
    img = np.full((200, 200, 3), 60, np.uint8)
    img[60:140, 60:140] = 150
    s = object_scores(img, Box(60, 60, 80, 80))
    assert s["log_luminance"] == pytest.approx(math.log(151 / 61), abs=0.02)
    tex = textured(200, 200)
    crisp = object_scores(tex, Box(60, 60, 80, 80))["log_sharpness"]
    blurred = tex.copy()
    blurred[60:140, 60:140] = cv2.GaussianBlur(tex, (0, 0), 2)[60:140, 60:140]
    assert object_scores(blurred, Box(60, 60, 80, 80))["log_sharpness"] < crisp - 0.5
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    rng = np.random.default_rng(1)
    noisy[60:140, 60:140] = np.clip(150 + rng.normal(0, 1, (80, 80, 3)), 0, 255)  # a clean object, grainy frame
    assert object_scores(noisy, Box(60, 60, 80, 80))["log_noise"] < -1
    limits = RealismLimits(max_abs_log_luminance=0.5)
    assert "log_luminance" in limits.violation(s) and RealismLimits().violation(s) is None


def test_summary_compares_inserted_and_real_medians_overall_and_in_dark_frames():
    ins = [{"log_luminance": 0.1, "log_sharpness": 0.0, "dark": True}, {"log_luminance": -0.3, "dark": False}]
    real = [{"log_luminance": 0.2, "log_sharpness": -0.1, "dark": True}]
    out = summarize(ins, real)
    assert out["all"]["inserted"]["n"] == 2 and out["all"]["inserted"]["abs_log_luminance"] == pytest.approx(0.2)
    assert out["dark"]["inserted"]["abs_log_luminance"] == pytest.approx(0.1) and out["dark"]["real"]["n"] == 1


def test_sharpness_gap_interval_resamples_frames_and_widens_with_fewer_of_them():
    from roadsynth.generators.realism import median_gap

    rng = np.random.default_rng(0)

    def rows(n_frames, shift):
        out = []
        for f in range(n_frames):
            light = rng.normal(0, 0.3)  # what a frame's objects share
            out += [{"log_sharpness": light + shift + rng.normal(0, 0.05), "frame": f} for _ in range(3)]
        return out

    many = median_gap(rows(60, -0.2), rows(60, 0.0), "log_sharpness")
    few = median_gap(rows(6, -0.2), rows(6, 0.0), "log_sharpness")
    assert many["frames"] == 60 and many["ci95"][0] < many["median"] < many["ci95"][1]
    assert -0.5 < many["median"] < 0.1
    assert few["ci95"][1] - few["ci95"][0] > many["ci95"][1] - many["ci95"][0]
    assert median_gap(rows(1, 0), [], "log_sharpness") is None  # nothing to compare with


def test_per_luminance_gap_takes_brightness_out_of_the_sharpness_gap():
    """Objects brighter than their ring score sharper at the same blur (the Laplacian scales with brightness):
    inserted objects that differ from the real ones only by brightness show a sharpness gap but no
    per-luminance gap."""
    rng = np.random.default_rng(0)
    real, ins = [], []
    for f in range(30):
        for _ in range(3):
            texture = rng.normal(-0.2, 0.1)  # how busy the object is at the frame's blur
            real.append({"log_luminance": -0.4, "log_sharpness": texture - 0.4, "frame": f})
            ins.append({"log_luminance": 0.2, "log_sharpness": texture + 0.2, "frame": f})
    out = summarize(ins, real)["all"]
    assert out["log_sharpness_gap"]["median"] == pytest.approx(0.6, abs=0.1)
    assert abs(out["log_sharpness_per_luminance_gap"]["median"]) < 0.1
    assert out["inserted"]["log_luminance"] == pytest.approx(0.2) and out["real"]["log_luminance"] == pytest.approx(-0.4)
