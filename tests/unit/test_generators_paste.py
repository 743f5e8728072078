"""The paste inserter: pixels outside objects untouched, tight boxes, occlusion, blending, arguments."""

import numpy as np
import pytest

from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Box
from roadsynth.generators.base import Insertion, Rejection
from roadsynth.generators.paste import PasteInserter
from roadsynth.generators.verify import outside_mask_identical
from tests.unit.conftest import FRAME, place


def test_paste_changes_nothing_outside_the_objects_and_boxes_are_tight(bank):
    frame = load_image(FRAME)
    inserter = PasteInserter(bank, shadow=False)
    placements = [place("cow", 150, 300, 60), place("sheep", 330, 280, 40)]
    out, results = inserter.insert(frame, placements, np.random.default_rng(0))
    assert all(isinstance(r, Insertion) for r in results), results
    allowed = np.zeros(frame.shape[:2], bool)
    for r in results:
        p = r.placement
        # Tight box: inside the placement's full extent (1 px tolerance) and exactly the visible mask's extent.
        assert r.box.x >= p.box.x - 1 and r.box.x2 <= p.box.x2 + 1 and r.box.y >= p.box.y - 1 and r.box.y2 <= p.box.y2 + 1
        ys, xs = np.nonzero(r.frame_mask(frame.shape))
        assert (r.box.x, r.box.y, r.box.x2, r.box.y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert r.provenance.method == "paste" and r.provenance.source.startswith(("msrc:", "weizmann:"))
        x1, y1 = int(p.box.x) - 8, int(p.box.y) - 8
        allowed[max(y1, 0) : int(p.box.y2) + 8, max(x1, 0) : int(p.box.x2) + 8] = True
    identical, n = outside_mask_identical(frame, out, allowed)
    assert identical, f"{n} pixels changed outside the objects"
    assert not np.array_equal(frame, out)


def test_truncation_occlusion_and_far_to_near(bank):
    frame = load_image(FRAME)
    inserter = PasteInserter(bank, shadow=False, match=None)
    # Half outside the left border.
    [r], = [inserter.insert(frame, [place("cow", 5, 300, 60)], np.random.default_rng(1))[1]]
    assert isinstance(r, Insertion) and r.box.x == 0 and r.provenance.params["truncated"]
    # An occluder box removes the object's pixels under it.
    occ = Box(140, 250, 30, 60)
    _, [r] = inserter.insert(frame, [place("cow", 150, 300, 60)], np.random.default_rng(2), occluders={7: occ})
    m = r.frame_mask(frame.shape)
    assert not m[250:300, 141:169].any() and m.any()
    # Two overlapping new objects: the nearer (lower contact) one is drawn last and trims the farther one.
    far, near = place("cow", 200, 250, 50), place("sheep", 210, 290, 50)
    _, (rf, rn) = inserter.insert(frame, [near, far], np.random.default_rng(3))
    assert isinstance(rf, Insertion) and isinstance(rn, Insertion)
    assert not (rf.frame_mask(frame.shape) & rn.frame_mask(frame.shape)).any()


def test_unknown_category_is_rejected_with_reason(bank):
    _, [r] = PasteInserter(bank).insert(load_image(FRAME), [place("unicorn", 100, 300, 40)], np.random.default_rng(0))
    assert isinstance(r, Rejection) and "no cut-out for category `unicorn`" in r.reason


def test_poisson_blend_stays_inside_its_region(bank):
    frame = load_image(FRAME)
    out, [r] = PasteInserter(bank, blend="poisson", shadow=False).insert(
        frame, [place("cow", 240, 300, 60)], np.random.default_rng(4))
    assert isinstance(r, Insertion)
    allowed = np.zeros(frame.shape[:2], bool)
    allowed[230:310, 180:300] = True
    assert outside_mask_identical(frame, out, allowed)[0]


def test_bad_arguments_read_like_diffusers(bank):
    with pytest.raises(ValueError, match=r"`feather_px` must be in \[0, 50\], but got 70"):
        PasteInserter(bank, feather_px=70)
    with pytest.raises(ValueError, match="`blend` must be one of"):
        PasteInserter(bank, blend="magic")
