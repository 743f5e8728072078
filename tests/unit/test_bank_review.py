"""Reviewing a cut-out bank: a person's accept/reject decisions beside the bank, honoured by generation."""

from __future__ import annotations

import pytest

from roadsynth.generators.bank import DECISIONS, BankReview, read_decisions, save_bank, save_decision
from roadsynth.generators.cutouts import BUILT_REFUSED, CutoutBank
from roadsynth.generators.cutout_sources import from_weizmann
from tests.conftest import DATA


@pytest.fixture(scope="module")
def weizmann_bank():
    return from_weizmann(DATA / "cutouts" / "weizmann_horse")


@pytest.fixture
def bank(tmp_path, weizmann_bank):
    save_bank(weizmann_bank, tmp_path / "bank", min_quality=0.2)  # a few refused by the gate
    return tmp_path / "bank"


def test_rejected_cut_outs_never_reach_a_generation_and_accepted_ones_pass_the_gate(bank):
    review = BankReview(bank)
    refused = [i for i in review.ids() if review.status(i) == "refused"]
    kept = [i for i in review.ids() if review.status(i) == "kept"]
    assert refused and kept
    before = CutoutBank.load(bank)
    assert {c.id for c in before.cutouts} == set(kept)
    review.decide(refused[0], "accept")
    review.decide(kept[-1], "reject")
    after = CutoutBank.load(bank)  # what `kind: bank` sources load
    ids = {c.id for c in after.cutouts}
    assert refused[0] in ids and kept[-1] not in ids and len(ids) == len(kept)
    assert after.refused == {"rejected in review": 1, BUILT_REFUSED: len(refused) - 1}  # counted, as in a run
    assert after.get(refused[0]).review == "accept"
    # A run's own gate (`insert.cutout_min_quality`) does not undo a person's accept.
    gated = after.gate(0.99)
    assert refused[0] in {c.id for c in gated.cutouts} and gated.refused["rejected in review"] == 1
    assert review.status(refused[0]) == "accepted" and review.status(kept[-1]) == "rejected"
    assert "1 accepted and 1 rejected by you" in review.summary()
    review.decide(kept[-1], None)  # undecided again
    assert kept[-1] in {c.id for c in CutoutBank.load(bank).cutouts}
    assert read_decisions(bank) == {refused[0]: "accept"}


def test_the_review_sorts_by_score_and_filters_by_class(bank):
    review = BankReview(bank)
    q = {c.id: c.quality for c in review.bank.cutouts}
    low = [q[i] for i in review.ids("score, lowest first")]
    assert low == sorted(low) and len(low) == len(review)
    high = [q[i] for i in review.ids("score, highest first")]
    assert high == sorted(high, reverse=True)
    assert review.ids(category="cow") == [] and len(review.ids(category="Horse")) == len(review)
    thumb = review.thumbnail(review.ids()[0])
    assert thumb.shape == (160, 160, 3) and (thumb[0, 0] == 128).all()  # on neutral grey
    with pytest.raises(ValueError, match="`sort` must be one of"):
        review.ids("by colour")


def test_bad_decisions_are_refused_with_file_and_line(bank):
    with pytest.raises(ValueError, match="no cut-out 'nope'"):
        save_decision(bank, "nope", "reject")
    with pytest.raises(ValueError, match="`decision` must be accept, reject or None"):
        save_decision(bank, "weizmann/horse001", "maybe")
    (bank / DECISIONS).write_text("id,decision\nweizmann/horse001,perhaps\n")
    with pytest.raises(ValueError, match=r"decisions.csv line 2: expected columns id, decision"):
        CutoutBank.load(bank)


def test_a_generation_from_a_reviewed_bank_pastes_only_what_the_review_left_in(tmp_path, bank):
    import json

    from roadsynth.config import load_config
    from roadsynth.generate import generate_dataset
    from tests.unit.test_ego_editor import user_config

    review = BankReview(bank)
    ids = review.ids()
    kept = [i for i in ids if review.status(i) == "kept"]
    for i in kept[:-2]:  # leave two horses in: every pasted object must be one of them
        review.decide(i, "reject")
    review.decide(ids[0], "accept")  # the lowest score, refused by the gate
    cfg_path = user_config(tmp_path / "cfg")
    text = cfg_path.read_text()
    start = text.index("  cutouts:")
    end = text.index("  insert:")
    cfg_path.write_text(text[:start] + f"  cutouts:\n    - {{kind: bank, path: {bank}}}\n" + text[end:])
    out = tmp_path / "run"
    generate_dataset(load_config(cfg_path), out)
    manifest = json.loads((out / "manifest.json").read_text())
    refused = [i for i in ids if review.status(i) == "refused"]  # by the gate, not accepted
    assert manifest["cutouts_refused"] == {"rejected in review": len(kept) - 2, BUILT_REFUSED: len(refused)}
    used = {a["provenance"]["cutout_id"]: a["provenance"].get("cutout_review")
            for a in json.loads((out / "annotations.json").read_text())["annotations"] if "provenance" in a}
    assert used and set(used) <= {*kept[-2:], ids[0]}
    assert all(review_ == ("accept" if cid == ids[0] else None) for cid, review_ in used.items())
