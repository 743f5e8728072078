"""The dose-response curve: nested doses, the `real+sources` control, the slope and its two intervals, and
the budget read off a curve (roadsynth/arms.py, evaluation/curves.py)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats

from roadsynth.arms import arm_dirname, build_sources, dose_prefix, inserted_objects, parse_arm, sources_prefix
from roadsynth.config import ConfigError, load_config
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord, Provenance
from roadsynth.evaluation import curves, plots
from roadsynth.evaluation.comparisons import arm_pairs, headline
from roadsynth.evaluation.report import write_report
from roadsynth.generators.cutouts import Cutout, CutoutBank
from tests.conftest import ROOT


def config(tmp_path, generate=None, **experiment):
    cfg = load_config(ROOT / "configs" / "quickstart.yaml").model_dump(mode="json")
    cfg["experiment"].update(experiment)
    cfg["generate"].update(generate or {})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def generated(n_images: int, objects=(1, 2), real=True) -> Dataset:
    """A generated dataset: image k holds objects[k % 2] pasted cut-outs `cut{k}.{j}` (ids in shuffled order)
    and, with `real`, one existing object."""
    ids = np.random.default_rng(0).permutation(np.arange(1, n_images + 1))
    images = tuple(ImageRecord(int(i), f"{i:03d}.jpg", 64, 48) for i in ids)
    anns = []
    for k in range(1, n_images + 1):
        for j in range(objects[k % 2]):
            anns.append(Annotation(len(anns) + 1, k, 1, Box(1, 1, 10, 10),
                                   provenance=Provenance("paste", f"cut{k}.{j}", 0, {"cutout_id": f"cut{k}.{j}"})))
        if real:
            anns.append(Annotation(len(anns) + 1, k, 2, Box(20, 20, 5, 5)))
    return Dataset(images, tuple(anns), (Category(1, "ambulance"), Category(2, "Car")))


def test_doses_expand_into_one_arm_per_method_and_dose(tmp_path):
    cfg = config(tmp_path, arms=["real", "real+generated", "real+random", "real-more-epochs"], doses=[0, 16, 64, 32])
    assert cfg.experiment.arm_names == ["real", "real+generated@16", "real+generated@32", "real+generated@64",
                                        "real+random@16", "real+random@32", "real+random@64", "real-more-epochs"]
    assert parse_arm("real+random@32") == ("real+random", 32) and parse_arm("real") == ("real", 0)
    assert parse_arm("real+generated") == ("real+generated", None)  # no doses: every generated image
    assert arm_dirname("real+generated@32", 1) == "real_plus_generated_dose32_seed1"
    assert config(tmp_path, doses=[]).experiment.arm_names == ["real", "real+generated"]


@pytest.mark.parametrize("doses, error", [([0, 16, 16], "distinct"), ([0], "one above 0"), ([-1, 8], "non-negative"),
                                          ([0, 16, 128], "at most `generate.n_images` (64), but got 128")])
def test_bad_doses_are_refused_with_the_reason(tmp_path, doses, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        config(tmp_path, doses=doses)


def test_the_sources_control_is_refused_when_the_sources_are_the_real_data(tmp_path):
    with pytest.raises(ConfigError, match="already in the real arm"):
        config(tmp_path, arms=["real", "real+generated", "real+sources"])  # quickstart: cutouts_from_real


def test_doses_are_nested_prefixes_of_one_generation(tmp_path):
    ds = generated(10)
    small, large = dose_prefix(ds, 4, tmp_path), dose_prefix(ds, 8, tmp_path)
    assert sorted(im.id for im in small.images) == [1, 2, 3, 4]
    assert {im.id for im in small.images} < {im.id for im in large.images}
    assert {a.id for a in small.annotations} < {a.id for a in large.annotations}
    assert inserted_objects(small) == 6 and len(small.annotations) == 10  # real objects come along, not counted
    assert dose_prefix(ds, None, tmp_path) is ds
    with pytest.raises(ValueError, match="dose 12 needs 12 generated images, but the generation made 10"):
        dose_prefix(ds, 12, tmp_path)


def photo(path, w=40, h=30):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)
    return str(path)


def cutout(id_, path, box=(2, 3, 10, 12), category="ambulance"):
    return Cutout(id_, category, np.zeros((4, 4, 3), np.uint8), np.ones((4, 4), np.float32), f"t:{id_}", "polygon",
                  path, (40, 30), box)


def test_sources_are_the_cutouts_photos_in_order_of_use_with_their_boxes(tmp_path):
    bank_dir = tmp_path / "bank"
    a, b, c = (photo(bank_dir / "photos" / f"{n}.jpg") for n in "abc")
    outside = photo(tmp_path / "elsewhere" / "x.jpg")
    # cut{k}.{j}: image 1 pastes cut1.0 (photo c), image 2 pastes cut2.0 and cut2.1 (both from photo a)
    cuts = [cutout("cut1.0", c), cutout("cut2.0", a, (1, 1, 5, 5)), cutout("cut2.1", a, (20, 10, 8, 8)),
            cutout("other", b), cutout("evil", outside), cutout("old", None)]
    CutoutBank(cuts).save(bank_dir)
    assert CutoutBank.load(bank_dir).get("cut2.1").source_box == (20, 10, 8, 8)  # round-trips through index.json
    cfg = config(tmp_path, cutouts_from_real={}, arms=["real", "real+generated", "real+sources"], doses=[0, 1, 2],
                 generate={"cutouts": [{"kind": "bank", "path": str(bank_dir)}]})
    folder = build_sources(cfg, tmp_path / "out", generated(2, objects=(2, 1)), {"ambulance": "Ambulance"})
    ds = json.loads((folder / "annotations.json").read_text())
    assert [im["source"] for im in ds["images"]] == [c, a, b]  # first use, then the rest (seeded)
    assert [an["bbox"] for an in ds["annotations"] if an["image_id"] == 2] == [[1, 1, 5, 5], [20, 10, 8, 8]]
    assert [cat["name"] for cat in ds["categories"]] == ["Ambulance"]  # the real data's spelling
    assert (folder / "images" / ds["images"][0]["file_name"]).resolve() == (bank_dir / "photos" / "c.jpg").resolve()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["photos"] == 3 and manifest["photos_first_used_by_generated"] == 2
    assert any("evil" in p and "outside the declared" in p for p in manifest["problems"])  # never read
    assert any("old" in p and "rebuild" in p for p in manifest["problems"])


def test_a_sources_dose_holds_as_many_boxes_as_the_dose_pasted_objects():
    ds = generated(6, objects=(2, 1), real=False)  # source photos with 1 or 2 boxes each
    for n in (0, 1, 3, 4):
        part = sources_prefix(ds, n)
        assert inserted_objects(part) >= n and inserted_objects(sources_prefix(ds, n)) - n < 2  # whole photos
    assert {im.id for im in sources_prefix(ds, 3).images} <= {im.id for im in sources_prefix(ds, 4).images}
    assert len(sources_prefix(ds, 100).images) == 6  # the bank is exhausted: all of it


class LinearAP:
    """A per-image evaluation whose AP is the weighted mean of per-image scores a + k*log2(dose) + noise."""

    def __init__(self, values):
        self.values = np.asarray(values, float)
        self.image_ids = list(range(len(values)))

    def ap(self, weights=None, category_ids=None):
        w = np.ones_like(self.values) if weights is None else weights
        v = float((w * self.values).sum() / w.sum())
        return {"mAP50": v, "mAP50_95": v / 2}


def dose_evals(k: float, seeds=4, doses=(0, 8, 16, 32, 64), n_img=120, seed_sd=0.01, image_sd=0.05, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    difficulty = rng.normal(0, image_sd, n_img)  # shared by every arm: a paired bootstrap cancels it
    out = {}
    for d in doses:
        arm = "real" if d == 0 else f"real+generated@{d}"
        level = 0.3 + (k * math.log2(d) if d else 0.0)
        out[arm] = [LinearAP(level + difficulty + rng.normal(0, seed_sd) + rng.normal(0, 0.01, n_img))
                    for _ in range(seeds)]
    return out


def test_the_slope_recovers_a_known_trend_and_both_intervals_cover_it():
    evals = dose_evals(k=0.02)
    (t50, t95) = curves.trends(evals, list(evals), [("Ambulance", 1)], n_boot=200)
    assert t50["metric"] == "AP50" and t50["doses"] == [8, 16, 32, 64] and t50["trainings"] == 16
    assert t50["slope_per_doubling"] == pytest.approx(0.02, abs=0.004)
    # Trainings scatter around the true line: their interval covers it. The image interval holds these
    # trainings fixed (test-set noise only), so it covers their own slope, and the true one without seed noise.
    assert t50["seed_ci_low"] < 0.02 < t50["seed_ci_high"]
    assert t50["ci_low"] < t50["slope_per_doubling"] < t50["ci_high"]
    quiet = curves.trends(dose_evals(k=0.02, seed_sd=0.0), list(evals), [("Ambulance", 1)], n_boot=200)[0]
    assert quiet["ci_low"] < 0.02 < quiet["ci_high"]
    assert t50["verdict"] == "rises" and t50["mdd"] == pytest.approx(
        max(t50["ci_high"] - t50["ci_low"], t50["seed_ci_high"] - t50["seed_ci_low"]) / 2)
    assert t95["slope_per_doubling"] == pytest.approx(t50["slope_per_doubling"] / 2)


def test_a_flat_curve_claims_no_trend():
    evals = dose_evals(k=0.0)
    t = curves.trends(evals, list(evals), [("Ambulance", 1)], n_boot=200)[0]
    assert t["verdict"] == "no significant trend" and t["seed_ci_low"] < 0 < t["seed_ci_high"]


def test_the_trainings_interval_is_the_least_squares_one():
    x = [8, 8, 16, 16, 32, 32, 64]
    y = [0.1, 0.12, 0.15, 0.13, 0.2, 0.17, 0.22]
    b, lo, hi = curves.slope_interval(x, y)
    fit = stats.linregress(np.log2(x), y)
    half = stats.t.ppf(0.975, len(x) - 2) * fit.stderr
    assert (b, lo, hi) == pytest.approx((fit.slope, fit.slope - half, fit.slope + half))
    assert all(math.isnan(v) for v in curves.slope_interval([8, 16], [0.1, 0.2])[1:])  # no residual left


def test_curve_rows_start_every_method_at_the_real_arm():
    evals = dose_evals(k=0.02, seeds=3)
    evals.update({f"real+random@{d}": evals[f"real+generated@{d}"] for d in (8, 16, 32, 64)})
    rows = curves.curve_rows(evals, list(evals), [("Ambulance", 1)])
    ap50 = [r for r in rows if r["metric"] == "AP50"]
    assert [(r["method"], r["dose"]) for r in ap50] == [("real+generated", d) for d in (0, 8, 16, 32, 64)] + [
        ("real+random", d) for d in (0, 8, 16, 32, 64)]
    real = [r for r in ap50 if r["dose"] == 0]
    assert real[0]["arm"] == "real" and real[0]["mean"] == real[1]["mean"] and real[0]["n_seeds"] == 3
    assert real[0]["seed_ci_low"] < real[0]["mean"] < real[0]["seed_ci_high"]


def curve(means, half=0.02, method="real+generated"):
    return [{"class": "Ambulance", "metric": "AP50", "method": method, "dose": d, "mean": m, "std": half,
             "seed_ci_low": m - half, "seed_ci_high": m + half, "n_seeds": 3} for d, m in means.items()]


def test_the_budget_is_the_smallest_dose_within_the_best_doses_seed_interval():
    plateau = curve({0: 0.20, 16: 0.25, 32: 0.29, 64: 0.30, 128: 0.295})
    b = curves.measured_budget(plateau, [], "Ambulance")
    assert (b["dose"], b["best_dose"], b["still_rising"]) == (32, 64, False)
    rising = curve({0: 0.20, 16: 0.25, 32: 0.30, 64: 0.40})
    trend = [{"class": "Ambulance", "metric": "AP50", "method": "real+generated", "verdict": "rises"}]
    assert curves.measured_budget(rising, trend, "Ambulance")["still_rising"] is True
    assert curves.measured_budget(curve({0: 0.3, 16: 0.29}), [], "Ambulance")["dose"] == 0  # no gain: nothing
    assert curves.measured_budget(plateau, [], "Deer") is None


def test_dosed_comparisons_pair_methods_at_the_same_dose_and_lead_with_the_largest():
    arms = ["real", "real+generated@16", "real+generated@64", "real+random@16", "real+random@64", "real+sources@64"]
    pairs = arm_pairs(arms)
    assert ("real+generated@16", "real+random@16") in pairs and ("real+generated@64", "real+sources@64") in pairs
    assert ("real+generated@16", "real+random@64") not in pairs and ("real+random@64", "real") in pairs
    comps = [{"arm": a, "baseline": "real", "class": "Ambulance", "metric": "AP50"} for a in arms[1:]]
    assert headline(comps, ["Ambulance"])["arm"] == "real+generated@64"


def test_the_report_opens_with_the_trend_verdict_and_the_curve(tmp_path):
    evals = dose_evals(k=0.02, seeds=2, doses=(0, 16, 32, 64))
    arms = list(evals)
    rows_c = curves.curve_rows(evals, arms, [("Ambulance", 1)])
    trend = curves.trends(evals, arms, [("Ambulance", 1)], n_boot=50)
    runs = [{"arm": a, "seed": s, "train_images": 10, "mAP50_95": 0.1, "mAP50": 0.2, "mAP75": 0.1, "AP_small": None,
             "AP_medium": 0.1, "AP_large": 0.1, "AR100": 0.1, "per_class": {}} for a in arms for s in (0, 1)]
    figures = {"dose_curve": plots.dose_curves(rows_c, trend)}
    lead = {"arm": "real+generated@64", "baseline": "real", "class": "Ambulance", "metric": "AP50", "difference": 0.1,
            "ci_low": 0.05, "ci_high": 0.15, "seed_ci_low": 0.01, "seed_ci_high": 0.2, "verdict": "improves",
            "verdict_reason": "both", "mdd": 0.1}
    write_report(tmp_path, runs, title="t", context={}, comparisons=[lead], figures=figures, extras={
        "headline": lead, "trend_headline": curves.lead_trend(trend, ["Ambulance"]), "curves": rows_c,
        "trends": trend, "measured_budget": curves.measured_budget(rows_c, trend, "Ambulance")})
    md = (tmp_path / "report.md").read_text()
    first = md.split("## ")[1]
    assert first.startswith("Verdict: Ambulance AP50 against the amount of generated data")
    assert "points per doubling" in first and "![dose curve](plots/dose_curve.png)" in first
    assert "At the largest dose: **real+generated@64 vs real**" in first
    assert "**Measured budget** (Ambulance AP50, real+generated)" in md and "heuristic" not in md
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {r["dose"] for r in saved["curves"]} == {0, 16, 32, 64} and saved["trends"][0]["mdd"] > 0
    html = (tmp_path / "report.html").read_text()
    assert html.count('alt="dose_curve"') == 1 and html.index('alt="dose_curve"') < html.index("Dose-response")


def dosed_experiment(folder, n_images=8, doses=(0, 2, 4, 8)):
    """An experiment folder as the UI reads it: metrics.json with curves and trends, generated images."""
    from roadsynth.datasets.coco import write_coco

    evals = dose_evals(k=0.02, seeds=2, doses=doses)
    arms = list(evals)
    metrics = {"curves": curves.curve_rows(evals, arms, [("Ambulance", 1)]),
               "trends": curves.trends(evals, arms, [("Ambulance", 1)], n_boot=20)}
    (folder / "generated" / "images").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    ds = generated(n_images)
    for im in ds.images:
        Image.fromarray(np.full((48, 64, 3), 10 * im.id, np.uint8)).save(folder / "generated" / "images" / im.file_name)
    write_coco(ds, folder / "generated" / "annotations.json")
    return folder


def test_the_ui_curve_shows_a_dose_and_the_images_it_adds(tmp_path):
    from roadsynth.review import DoseCurve

    curve = DoseCurve(dosed_experiment(tmp_path))
    assert curve and curve.doses == [0, 2, 4, 8] and curve.methods == ["real+generated"] and curve.target == "Ambulance"
    assert curve.figure("real+generated", 4).ndim == 3
    added = curve.examples("real+generated", 8, n=10)
    assert len(added) == 4 and int(added[0][30, 60, 0]) == 50  # images 5..8: what dose 8 adds to dose 4
    assert curve.examples("real+generated", 0) == []
    text = curve.summary("real+generated", 4)
    assert text.startswith("**real+generated, dose 4** (4 generated images): Ambulance AP50") and "per doubling" in text
    assert not DoseCurve(tmp_path / "missing")  # no metrics.json: no panel


def test_a_coco_photo_keeps_every_label_also_the_objects_the_bank_could_not_cut_out(tmp_path):
    from roadsynth.generators.cutout_sources import from_coco_polygons

    photo(tmp_path / "imgs" / "p.jpg", w=100, h=80)
    square = lambda x, y, s: [[x, y, x + s, y, x + s, y + s, x, y + s]]  # noqa: E731
    coco = {"images": [{"id": 1, "file_name": "p.jpg", "width": 100, "height": 80}],
            "categories": [{"id": 1, "name": "cow"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [20, 20, 40, 40], "area": 1600,
                             "segmentation": square(20, 20, 40), "iscrowd": 0},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 50, 30, 30], "area": 900,
                             "segmentation": square(0, 50, 30), "iscrowd": 0}]}  # cut by the border
    (tmp_path / "c.json").write_text(json.dumps(coco))
    bank = from_coco_polygons(tmp_path / "c.json", tmp_path / "imgs", ["cow"], min_area=100)
    assert [c.id for c in bank.cutouts] == ["coco/1"]
    assert bank.cutouts[0].source_labels == (("cow", (20, 20, 40, 40)), ("cow", (0, 50, 30, 30)))
    bank.save(tmp_path / "bank")
    assert CutoutBank.load(tmp_path / "bank").cutouts[0].source_labels == bank.cutouts[0].source_labels
    from roadsynth.arms import photo_labels

    assert photo_labels(bank.cutouts) == [("cow", (20, 20, 40, 40)), ("cow", (0, 50, 30, 30))]
