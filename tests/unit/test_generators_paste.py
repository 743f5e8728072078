import numpy as np
import pytest

from roadsynth.datasets.io import load_image
from roadsynth.datasets.records import Box
from roadsynth.generators.base import Insertion, Rejection
from roadsynth.generators.cutouts import CutoutBank, build_bank, from_msrc, from_weizmann, iter_msrc_instances
from roadsynth.generators.masks import measure_mask_quality
from roadsynth.generators.paste import PasteInserter
from roadsynth.generators.verify import outside_mask_identical, verify_object
from roadsynth.geometry.records import Placement
from tests.conftest import DATA

FRAME = DATA / "camvid" / "images" / "0016E5_04440.jpg"


@pytest.fixture(scope="module")
def bank() -> CutoutBank:
    return CutoutBank.concat([from_msrc(DATA / "cutouts" / "msrc_v2_animals", ["cow", "sheep", "dog"]),
                              from_weizmann(DATA / "cutouts" / "weizmann_horse")])


def test_banks_from_bundled_sources(bank, tmp_path):
    counts = bank.counts()
    assert counts["cow"] >= 20 and counts["sheep"] >= 10 and counts["dog"] >= 10 and counts["horse"] >= 20
    for c in bank.cutouts[:20]:
        assert c.rgb.shape[:2] == c.alpha.shape and c.alpha.max() == 1.0
        assert c.alpha[0].any() and c.alpha[:, 0].any()  # tight crop: the mask touches the crop's edges
    deer = build_bank([{"kind": "yolo", "path": DATA / "deer", "class_map": {"deer": "deer"}}])
    assert len(deer) >= 14 and set(deer.categories) == {"deer"}
    assert {c.mask_method for c in deer.cutouts} == {"grabcut"}  # degenerate GrabCut masks are not pasted
    bank.save(tmp_path / "bank")
    back = CutoutBank.load(tmp_path / "bank")
    assert back.counts() == counts
    assert np.array_equal(back.cutouts[3].rgb, bank.cutouts[3].rgb)
    assert np.abs(back.cutouts[3].alpha - bank.cutouts[3].alpha).max() <= 1 / 255


def test_grabcut_masks_beat_the_trivial_masks_on_true_segments():
    samples = [(rgb, m) for _, rgb, m, _ in iter_msrc_instances(DATA / "cutouts" / "msrc_v2_animals", ["cow"])][:25]
    q = measure_mask_quality(samples)
    assert q["n"] == 25
    # Measured on all 99 MSRC animals: GrabCut 0.82 mean IoU vs 0.59 for the box and 0.62 for an ellipse.
    assert q["grabcut_mean_iou"] > q["box_mean_iou"] + 0.15, q
    assert q["grabcut_mean_iou"] > q["ellipse_mean_iou"] + 0.1, q


def place(cat: str, x: float, bottom: float, h: float, w: float | None = None) -> Placement:
    w = w or h * 1.4
    return Placement(category=cat, box=Box(x - w / 2, bottom - h, w, h), contact=(x, bottom))


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
    inserter = PasteInserter(bank, shadow=False, harmonize=False)
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


def _exact_seamless_clone(dst, src, mask, ch):
    """Perez et al.'s discrete equations on the mask's pixels, solved directly (small cases only)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spl

    ys, xs = np.nonzero(mask)
    idx = -np.ones(mask.shape, int)
    idx[ys, xs] = np.arange(len(ys))
    s, d = src[..., ch].astype(float), dst[..., ch].astype(float)
    rows, cols, vals, b = [], [], [], np.zeros(len(ys))
    for n, (y, x) in enumerate(zip(ys, xs)):
        rows.append(n), cols.append(n), vals.append(4.0)
        for y2, x2 in ((y, x + 1), (y, x - 1), (y + 1, x), (y - 1, x)):
            b[n] += s[y, x] - s[y2, x2]
            if idx[y2, x2] >= 0:
                rows.append(n), cols.append(idx[y2, x2]), vals.append(-1.0)
            else:
                b[n] += d[y2, x2]
    A = sp.csr_matrix((vals, (rows, cols)), shape=(len(ys), len(ys)))
    return spl.spsolve(A, b), ys, xs


def test_poisson_solve_is_close_to_the_exact_seamless_clone():
    import cv2

    from roadsynth.generators.paste import poisson_solve

    rng = np.random.default_rng(0)
    dst = cv2.GaussianBlur(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8), (0, 0), 4)
    src = cv2.add(np.full_like(dst, 120), rng.integers(0, 60, (40, 50, 3), dtype=np.uint8))
    mask = np.zeros((40, 50), np.uint8)
    cv2.ellipse(mask, (25, 20), (15, 10), 0, 0, 360, 1, -1)
    f = poisson_solve(dst, src, mask.astype(bool))
    for ch in range(3):
        exact, ys, xs = _exact_seamless_clone(dst, src, mask, ch)
        err = np.abs(f[ys, xs, ch] - exact)
        # The window solve lets the correction leak a little past the mask's corners; it stays small.
        assert err.mean() < 2.0 and err.max() < 10, (ch, err.mean(), err.max())
    # The object's own texture survives (gradients kept) while its colour moves toward the background.
    inside = mask.astype(bool)
    assert np.corrcoef(f[inside][:, 0].astype(float), src[inside][:, 0].astype(float))[0, 1] > 0.9


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


def test_bad_arguments_read_like_diffusers(bank):
    with pytest.raises(ValueError, match=r"`feather_px` must be in \[0, 50\], but got 70"):
        PasteInserter(bank, feather_px=70)
    with pytest.raises(ValueError, match="`blend` must be one of"):
        PasteInserter(bank, blend="magic")


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
