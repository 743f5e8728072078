"""Mask quality: GrabCut silhouettes against true segments."""

from roadsynth.generators.cutouts import iter_msrc_instances
from roadsynth.generators.masks import measure_mask_quality
from tests.conftest import DATA


def test_grabcut_masks_beat_the_trivial_masks_on_true_segments():
    samples = [(rgb, m) for _, rgb, m, _ in iter_msrc_instances(DATA / "cutouts" / "msrc_v2_animals", ["cow"])][:25]
    q = measure_mask_quality(samples)
    assert q["n"] == 25
    # Measured on all 99 MSRC animals: GrabCut 0.82 mean IoU vs 0.59 for the box and 0.62 for an ellipse.
    assert q["grabcut_mean_iou"] > q["box_mean_iou"] + 0.15, q
    assert q["grabcut_mean_iou"] > q["ellipse_mean_iou"] + 0.1, q
