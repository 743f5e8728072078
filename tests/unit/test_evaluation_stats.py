"""Bootstrap / t-interval statistics on synthetic data with a known truth, and the experiment's helpers."""

import math

import numpy as np
import pytest

from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.evaluation.coco_metrics import PerImageEval, evaluate_detections
from roadsynth.evaluation.stats import mean_std, paired_bootstrap, paired_bootstrap_diff, seed_bootstrap_diff, verdict
from tests.unit.test_evaluation_coco_metrics import synthetic


def per_image_scores(n: int, effect: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image scores of two arms: a shared image difficulty (large) plus small arm-specific noise, and a
    true mean difference `effect`. The shared part is what a paired bootstrap cancels."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.5, 0.2, n)
    return difficulty + rng.normal(0, 0.05, n), difficulty + effect + rng.normal(0, 0.05, n)


def mean_diff_fn(a: np.ndarray, b: np.ndarray):
    return lambda idx: float(b[idx].mean() - a[idx].mean())


def test_paired_bootstrap_diff_covers_the_truth_and_excludes_zero_for_a_real_effect():
    a, b = per_image_scores(300, 0.02, seed=0)
    diff, lo, hi = paired_bootstrap_diff(mean_diff_fn(a, b), np.arange(300), n_boot=1000, seed=0)
    assert diff == pytest.approx(float((b - a).mean()))
    assert 0 < lo < 0.02 < hi  # excludes 0, covers the truth
    assert hi - lo < 0.03  # paired: the 0.2 image-difficulty spread cancels (unpaired width would be ~0.06)
    assert verdict(lo, hi) == "improves"


def test_paired_bootstrap_diff_contains_zero_without_an_effect_and_has_nominal_coverage():
    a, b = per_image_scores(300, 0.0, seed=1)
    _, lo, hi = paired_bootstrap_diff(mean_diff_fn(a, b), np.arange(300), n_boot=500, seed=0)
    assert lo < 0 < hi and verdict(lo, hi) == "no significant change"
    # Coverage of the 95 % interval over 200 independent experiments with effect 0.01: about 95 %.
    covered = 0
    for rep in range(200):
        a, b = per_image_scores(100, 0.01, seed=100 + rep)
        _, lo, hi = paired_bootstrap_diff(mean_diff_fn(a, b), np.arange(100), n_boot=300, seed=rep)
        covered += lo <= 0.01 <= hi
    assert 0.88 <= covered / 200 <= 0.99, covered


def test_paired_bootstrap_diff_resamples_ids_and_drops_undefined_samples():
    seen = []

    def metric(sample):
        seen.append(sample)
        return float("nan") if 7 not in sample else 1.0

    diff, lo, hi = paired_bootstrap_diff(metric, [5, 6, 7], n_boot=50, seed=3)
    assert diff == 1.0 and (lo, hi) == (1.0, 1.0)  # ~30 % of samples lack id 7 and are dropped
    assert all(set(s) <= {5, 6, 7} and len(s) == 3 for s in seen) and any(len(set(s)) < 3 for s in seen)
    assert all(math.isnan(v) for v in paired_bootstrap_diff(metric, [1, 2, 3], n_boot=40))  # never defined
    with pytest.raises(ValueError, match="`alpha`"):
        paired_bootstrap_diff(metric, [1], alpha=1.5)


def test_seed_t_interval_matches_a_hand_computation():
    """a = [.30, .31, .29], b = [.40, .41, .39]: diff 0.1, both sd 0.01, se = sqrt(2 * 0.01² / 3) = 0.0081650,
    Welch df = 4, t(0.975, 4) = 2.7764451 -> half width 0.0226697."""
    diff, lo, hi = seed_bootstrap_diff([0.30, 0.31, 0.29], [0.40, 0.41, 0.39])
    assert diff == pytest.approx(0.1)
    assert (hi - lo) / 2 == pytest.approx(2.7764451 * math.sqrt(2 * 0.01**2 / 3), rel=1e-6)
    assert verdict(lo, hi) == "improves"
    # Seed noise as large as the effect: no claim.
    _, lo, hi = seed_bootstrap_diff([0.30, 0.36, 0.24], [0.33, 0.39, 0.27])
    assert lo < 0 < hi
    # Paired: per-seed differences [0.03, 0.03, 0.03] have no spread, so the interval collapses on 0.03.
    assert seed_bootstrap_diff([0.30, 0.36, 0.24], [0.33, 0.39, 0.27], paired=True) == pytest.approx((0.03, 0.03, 0.03))
    d, lo, hi = seed_bootstrap_diff([0.3], [0.4])
    assert d == pytest.approx(0.1) and math.isnan(lo) and math.isnan(hi) and verdict(lo, hi) == "no significant change"


def test_mean_std_ignores_nan():
    assert mean_std([0.1, float("nan"), 0.3]) == pytest.approx((0.2, math.sqrt(0.02)))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_bootstrap_finds_a_real_difference_and_not_a_fake_one():
    gt, weak = synthetic(200, 2, 0.3)
    _, strong = synthetic(200, 2, 0.9)  # same GT (same seed), better detections
    a, b = [PerImageEval(gt, weak)], [PerImageEval(gt, strong)]
    r = paired_bootstrap(a, b, n_boot=200, seed=0)
    assert r["difference"] > 0.05 and r["ci_low"] > 0 and r["verdict"] == "improves"
    same = paired_bootstrap(a, [PerImageEval(gt, weak)], n_boot=200, seed=0)
    assert same["difference"] == 0.0 and same["ci_low"] <= 0 <= same["ci_high"]
    assert same["verdict"] == "no significant change"
    assert paired_bootstrap(b, a, n_boot=200)["verdict"] == "worse"


def test_verdict_rules():
    assert verdict(0.01, 0.02) == "improves"
    assert verdict(-0.02, -0.01) == "worse"
    assert verdict(-0.01, 0.02) == "no significant change"
    assert verdict(float("nan"), 0.1) == "no significant change"


def test_budget_grows_with_gap_and_rarity():
    from roadsynth.evaluation.stats import suggest_budget

    b = suggest_budget({"Car": 0.5, "Bus": 0.25, "Ambulance": 0.05, "None": None},
                       {"Car": 200, "Bus": 50, "Ambulance": 8})
    assert b["Car"] == 0 and 0 < b["Bus"] < b["Ambulance"] <= 2000
    assert "None" not in b


def test_leakage_finds_a_planted_duplicate_and_a_reencoded_copy(tmp_path):
    import cv2

    from roadsynth.datasets.io import load_image, save_image_atomic
    from roadsynth.datasets.records import Provenance
    from roadsynth.evaluation.leakage import near_duplicates, provenance_leaks
    from tests.conftest import DATA

    frames = sorted((DATA / "camvid" / "images").glob("*.jpg"))
    test, train = frames[:6], frames[6:30]
    planted = tmp_path / "planted.jpg"  # a test frame re-encoded smaller and slightly cropped: a near-duplicate
    rgb = load_image(test[2])[4:-4, 4:-4]
    save_image_atomic(planted, cv2.resize(rgb, (320, 240)), quality=70)
    exact = tmp_path / "exact.jpg"
    exact.write_bytes(test[4].read_bytes())
    leaks = near_duplicates(test, train + [planted, exact])
    kinds = {(lk.kind, lk.test_file, lk.train_file) for lk in leaks}
    assert ("duplicate", str(test[4]), str(exact)) in kinds
    assert any(k == "near-duplicate" and t == str(test[2]) and tr == str(planted) for k, t, tr in kinds)
    assert len(leaks) == 2, leaks  # no false alarms among the 24 other frames of the same streets
    gen = Dataset((ImageRecord(1, "000001.jpg", 480, 360, {"background_path": str(test[0])}),),
                  (Annotation(1, 1, 1, Box(0, 0, 5, 5), provenance=Provenance("paste", f"boxes:{test[1].name}#ann3", 0)),),
                  (Category(1, "cow"),))
    found = provenance_leaks(test, gen)
    assert [lk.kind for lk in found] == ["background", "cutout-source"]


def test_slices_by_image_attribute_match_evaluating_the_subset():
    from roadsynth.datasets.split import filter_dataset
    from roadsynth.evaluation.experiment_report import slice_metrics

    gt, dets = synthetic(120, 7, 0.5)
    images = tuple(ImageRecord(im.id, im.file_name, im.width, im.height, {"condition": "rain" if im.id % 3 else "fog"})
                   for im in gt.images)
    gt = gt.with_(images=images)
    rows = slice_metrics(gt, {"real": [PerImageEval(gt, dets)]}, ["condition"])
    fog = next(r for r in rows if r["value"] == "fog")
    sub = filter_dataset(gt, [im.id for im in gt.images if im.id % 3 == 0])
    expected = evaluate_detections(sub, [d for d in dets if d["image_id"] % 3 == 0], backend="pycocotools")
    assert fog["images"] == 40 and fog["real"] == pytest.approx(expected.stats["mAP50_95"], abs=1e-12)


def test_combined_verdict_needs_both_noise_sources_to_agree():
    from roadsynth.evaluation.stats import combined_verdict

    assert combined_verdict((0.01, 0.03), (0.005, 0.04))[0] == "improves"
    assert combined_verdict((-0.03, -0.01), (-0.05, -0.002))[0] == "worse"
    # The quickstart's case: a narrow test-image interval above 0, seeds scattered across 0.
    v, why = combined_verdict((0.0009, 0.0106), (-0.014, 0.021))
    assert v == "no significant change" and "per-seed" in why and "add seeds" in why
    v, why = combined_verdict((-0.01, 0.02), (0.01, 0.02))
    assert v == "no significant change" and "test images" in why
    v, why = combined_verdict((0.01, 0.03), (float("nan"), float("nan")))
    assert v == "no significant change" and "one seed" in why
    # Wired to the real per-seed interval: two seeds each, widely scattered -> nothing claimed.
    _, lo, hi = seed_bootstrap_diff([0.0009, 0.0021], [0.0066, 0.0032])
    assert lo < 0 < hi and combined_verdict((0.0009, 0.0106), (lo, hi))[0] == "no significant change"
