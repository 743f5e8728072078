"""The per-object verifier (something drawn, nothing spilled, a tight box) and the restyle edge scores."""

import numpy as np

from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Box
from roadsynth.generators.paste import PasteInserter
from roadsynth.generators.verify import verify_object
from tests.unit.conftest import FRAME, place


def test_verifier_rejects_nothing_drawn_and_spill_and_accepts_a_real_paste(bank):
    frame = load_image(FRAME)
    mask = np.zeros(frame.shape[:2], bool)
    mask[200:260, 100:160] = True
    box = Box(100, 200, 60, 60)
    v = verify_object(frame, frame.copy(), mask, box)
    assert not v.ok and v.reason.startswith("missing")
    spilled = frame.copy()
    spilled[:, :] = 255 - spilled[:, :]  # the whole frame changed, far beyond the box
    v = verify_object(frame, spilled, mask, box)
    assert not v.ok and v.reason.startswith("spill")
    out, [r] = PasteInserter(bank, shadow=False).insert(frame, [place("cow", 150, 300, 60)], np.random.default_rng(0))
    v = verify_object(frame, out, r.frame_mask(frame.shape), r.box)
    assert v.ok, v
    assert v.tight_box.iou(r.box) > 0.7


def test_edge_fscore_separates_kept_outlines_from_drift():
    import cv2

    from roadsynth.generators.verify import edge_density_ratio, edge_fscore

    car = load_image(FRAME)[180:330, 130:330]  # the hatchback in front
    mask = np.ones(car.shape[:2], bool)
    assert edge_fscore(car, car, mask) == 1.0
    recoloured = np.clip(car.astype(int) * [1.2, 0.8, 0.9], 0, 255).astype(np.uint8)  # new paint, same shapes
    assert edge_fscore(car, recoloured, mask) > 0.9
    assert edge_fscore(car, np.roll(car, 1, axis=1), mask) > 0.9  # within the 1 px tolerance
    noise = np.random.default_rng(0).integers(0, 255, car.shape, dtype=np.uint8)
    assert edge_fscore(car, noise, mask) < 0.6 and edge_density_ratio(car, noise, mask) > 2.5  # texture everywhere
    assert edge_fscore(car, np.full_like(car, 128), mask) == 0.0  # the outline is gone
    assert edge_fscore(car, cv2.GaussianBlur(car, (0, 0), 6), mask) < 0.3  # melted
    assert 0.8 < edge_density_ratio(car, recoloured, mask) < 1.25
