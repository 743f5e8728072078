"""Cut-out banks from the bundled sources: MSRC, Weizmann, YOLO boxes through GrabCut; save and load."""

from dataclasses import replace

import numpy as np

from roadsynth.generators.cutouts import CutoutBank

from roadsynth.generators.cutout_sources import build_bank
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


def test_msrc_segments_holding_several_animals_are_left_out(tmp_path):
    """The bundled `exclude.csv` lists segments that merge touching animals (one box around a ewe and her lamb
    would be a wrong label); a copy of the folder without the file gives every segment again."""
    import csv
    import shutil

    from roadsynth.generators.cutout_sources import from_msrc, iter_msrc_instances, msrc_exclusions

    root = DATA / "cutouts" / "msrc_v2_animals"
    listed = msrc_exclusions(root)
    assert ("9_4_s.jpg", 2) in listed and "lamb" in listed[("9_4_s.jpg", 2)]
    ids = {c.id for c in from_msrc(root, ["sheep"]).cutouts}
    assert "msrc/9_4_s.jpg#seg2.0" not in ids and "msrc/9_3_s.jpg#seg2.0" in ids
    every = {n for n, *_ in iter_msrc_instances(root, ["sheep"])}  # uncurated: masks as ground truth
    assert "9_4_s.jpg#seg2.0" in every and len(every) == len(ids) + sum(1 for (_, _), r in listed.items()
                                                                       if "sheep" in r or "lamb" in r)
    copy = tmp_path / "msrc"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("exclude.csv"))
    assert {c.id for c in from_msrc(copy, ["sheep"]).cutouts} == {f"msrc/{n}" for n in every}
    with open(copy / "exclude.csv", "w", newline="") as f:
        csv.writer(f).writerows([["image", "segment"], ["9_4_s.jpg", "2"]])
    try:
        from_msrc(copy, ["sheep"])
    except ValueError as e:
        assert "exclude.csv" in str(e) and "segment_id" in str(e)
    else:
        raise AssertionError("a malformed exclude.csv must be an error")


def test_a_sources_bank_is_built_once_per_process_until_one_of_its_files_changes(tmp_path):
    import os
    import shutil

    from tests.conftest import DATA

    shutil.copytree(DATA / "cutouts" / "weizmann_horse", tmp_path / "w")
    src = [{"kind": "weizmann", "path": str(tmp_path / "w")}]
    first = build_bank(src)
    assert build_bank(src).cutouts[0] is first.cutouts[0]  # reused, not cut again
    mask = sorted((tmp_path / "w" / "figure_ground").glob("*.jpg"))[0]
    os.utime(mask, ns=(1, 1))  # a source file changed: cut again
    again = build_bank(src)
    assert again.cutouts[0] is not first.cutouts[0] and len(again) == len(first)
