"""Cut-out banks from the bundled sources: MSRC, Weizmann, YOLO boxes through GrabCut; save and load."""

from dataclasses import replace

import numpy as np

from roadsynth.generators.cutouts import CutoutBank, build_bank
from tests.conftest import DATA


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


def test_category_names_match_whatever_their_case(bank):
    rng = np.random.default_rng(0)
    assert bank.by_category("Horse") == bank.by_category("horse") != []
    assert bank.sample("HORSE", rng).category == "horse"
    first = bank.by_category("horse")[0]
    mixed = CutoutBank([*bank.by_category("horse")[:2], replace(first, id=first.id + "-copy", category="Horse")])
    assert mixed.categories == ["horse"] and mixed.counts() == {"horse": 3}  # one class, first spelling
