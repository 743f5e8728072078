"""The experiment's protocol pieces that need no detector: fixed test sets, target classes, equal compute,
per-class comparisons with their detectable difference, the starter's disjointness and the training cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from roadsynth.config import ConfigError, StarterConfig, load_config, load_model
from roadsynth.datasets.records import Annotation, Box, Category, Dataset, DatasetSplit, ImageRecord
from roadsynth.datasets.yolo import read_yolo
from roadsynth.evaluation.coco_metrics import PerImageEval
from roadsynth.evaluation.comparisons import arm_pairs, compare, headline, minimum_detectable_difference
from roadsynth.experiment import plan_compute, split_real
from tests.conftest import DATA, ROOT


def quickstart(tmp_path, **experiment):
    cfg = load_config(ROOT / "configs" / "quickstart.yaml").model_dump(mode="json")
    cfg["experiment"].update(experiment)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_fixed_test_set_is_used_whole_and_only_the_pool_is_split_and_thinned(tmp_path):
    cfg = quickstart(tmp_path)
    parts = split_real(cfg)
    fixed, _ = read_yolo(DATA / "vehicles_test")
    assert [im.file_name for im in parts["test"].dataset.images] == [im.file_name for im in fixed.images]
    pool, _ = read_yolo(DATA / "vehicles")
    train_val = {im.file_name for k in ("train", "val") for im in parts[k].dataset.images}
    assert train_val <= {im.file_name for im in pool.images}
    amb = parts["train"].dataset.category_by_name("ambulance").id
    assert len({a.image_id for a in parts["train"].dataset.annotations if a.category_id == amb}) == 8
    assert cfg.experiment.targets == ["Ambulance"]  # defaults to the long_tail keys


def test_target_class_must_be_learnable_and_measurable(tmp_path):
    with pytest.raises(ValueError, match="target class `Deer` is not a category of the real train data"):
        split_real(quickstart(tmp_path, target_classes=["Deer"]))


def test_a_fixed_val_set_needs_a_fixed_test_set(tmp_path):
    cfg = load_config(ROOT / "configs" / "quickstart.yaml").model_dump(mode="json")
    cfg["experiment"]["real"]["test"] = None
    cfg["experiment"]["real"]["val"] = {"format": "yolo", "path": str(DATA / "vehicles_test")}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="`real.val` needs `real.test` too"):
        load_config(tmp_path / "c.yaml")


def test_equal_steps_gives_smaller_arms_more_epochs_and_equal_epochs_keeps_a_longer_real_control(tmp_path):
    sizes = {"real": 180, "real+generated": 244, "real+random": 243, "real-more-epochs": 180}
    plan = plan_compute(quickstart(tmp_path, arms=list(sizes)), sizes)
    assert plan["real+generated"] == {"epochs": 5, "steps_per_epoch": 16, "steps": 80, "images_seen": 1220}
    assert plan["real"]["epochs"] == 7 and abs(plan["real"]["steps"] - 80) <= plan["real"]["steps_per_epoch"] / 2
    assert plan["real+random"]["steps"] == 80
    plan = plan_compute(quickstart(tmp_path, arms=list(sizes), compute="equal-epochs"), sizes)
    assert plan["real"]["epochs"] == 5 and plan["real"]["steps"] == 60  # fewer steps: the data effect is confounded
    assert plan["real-more-epochs"]["epochs"] == 7  # ... which this control arm undoes


def synthetic_runs(n_img: int, effect_b: float, seeds: int, rng: np.random.Generator):
    """Per-image evaluations of two classes for `seeds` runs per arm; arm b finds class 2 more often."""
    images = tuple(ImageRecord(i, f"{i}.jpg", 100, 100) for i in range(1, n_img + 1))
    anns = tuple(Annotation(k + 1, (k % n_img) + 1, 1 + k // n_img, Box(10, 10, 40, 40)) for k in range(2 * n_img))
    gt = Dataset(images, anns, (Category(1, "Car"), Category(2, "Ambulance")))

    def run(p_hit: float):
        dets = []
        for a in anns:
            hit = rng.random() < (p_hit if a.category_id == 2 else 0.8)
            box = a.bbox if hit else Box(60, 60, 20, 20)
            dets.append({"image_id": a.image_id, "category_id": a.category_id, "bbox": box.xywh(),
                         "score": float(rng.random())})
        return PerImageEval(gt, dets)

    return {"real": [run(0.3) for _ in range(seeds)], "real+generated": [run(0.3 + effect_b) for _ in range(seeds)]}


def test_per_class_comparisons_carry_class_both_intervals_and_mdd():
    evals = synthetic_runs(150, 0.5, 3, np.random.default_rng(0))
    comps = compare(evals, arm_pairs(["real", "real+generated"]), [("Ambulance", 2)], n_boot=200)
    assert [(c["class"], c["metric"]) for c in comps] == [(None, "mAP50_95"), (None, "mAP50"),
                                                          ("Ambulance", "AP50"), ("Ambulance", "AP50_95")]
    amb = headline(comps, ["Ambulance"])
    assert amb["class"] == "Ambulance" and amb["metric"] == "AP50"
    assert amb["ci_low"] > 0 and amb["seed_ci_low"] > 0 and amb["verdict"] == "improves"
    widest = max(amb["ci_high"] - amb["ci_low"], amb["seed_ci_high"] - amb["seed_ci_low"])
    assert amb["mdd"] == pytest.approx(widest / 2)
    # The per-class AP is that class's AP alone: the overall AP50 moves half as much (two classes).
    overall = next(c for c in comps if c["class"] is None and c["metric"] == "mAP50")
    assert abs(overall["difference"]) < 0.75 * abs(amb["difference"])


def test_comparisons_compute_each_arm_resample_once_and_match_uncached_bootstrap():
    from roadsynth.evaluation.stats import paired_bootstrap

    evals = synthetic_runs(60, 0.3, 2, np.random.default_rng(2))
    evals["real+random"] = synthetic_runs(60, 0.1, 2, np.random.default_rng(3))["real+generated"]
    calls = {"n": 0}
    for runs in evals.values():
        for e in runs:
            inner = e.ap

            def counted(weights=None, category_ids=None, _inner=inner):
                calls["n"] += 1
                return _inner(weights, category_ids)

            e.ap = counted
    comps = compare(evals, arm_pairs(list(evals)), [("Ambulance", 2)], n_boot=50)
    # 3 comparisons x 4 entries; each of the 6 runs is scored once per (resample, scope): 51 x 2 (+ per-seed, kept).
    assert len(comps) == 12 and calls["n"] <= 6 * 51 * 2
    plain = paired_bootstrap(evals["real"], evals["real+generated"], n_boot=50, metric="mAP50", category_ids=[2])
    amb = next(c for c in comps if c["arm"] == "real+generated" and c["baseline"] == "real" and c["metric"] == "AP50")
    assert (amb["difference"], amb["ci_low"], amb["ci_high"]) == (plain["difference"], plain["ci_low"],
                                                                 plain["ci_high"])


def test_no_effect_gives_no_claim_and_one_seed_has_no_detectable_difference():
    evals = synthetic_runs(120, 0.0, 3, np.random.default_rng(1))
    amb = headline(compare(evals, arm_pairs(list(evals)), [("Ambulance", 2)], n_boot=200), ["Ambulance"])
    assert amb["verdict"] == "no significant change"
    one = {k: v[:1] for k, v in evals.items()}
    amb = headline(compare(one, arm_pairs(list(one)), [("Ambulance", 2)], n_boot=100), ["Ambulance"])
    assert amb["mdd"] is None and amb["seed_ci_low"] is None and amb["verdict"] == "no significant change"
    assert minimum_detectable_difference((0.0, 0.1), (-0.2, 0.2)) == pytest.approx(0.2)


def test_arm_pairs_add_the_ablation_and_the_longer_training_control():
    assert arm_pairs(["real", "real+generated", "real+random", "real-more-epochs"]) == [
        ("real+generated", "real"), ("real+random", "real"), ("real-more-epochs", "real"),
        ("real+generated", "real+random"), ("real+generated", "real-more-epochs")]


def test_starter_selection_drops_long_tail_images_reviewed_images_and_other_classes(tmp_path):
    from roadsynth.datasets.merge import link_merged
    from roadsynth.datasets.registry import read_dataset
    from roadsynth.detectors.starter import select_images

    cfg = load_model(ROOT / "configs" / "starter.yaml", StarterConfig)
    merged = link_merged([(s.path.name, read_dataset(s)) for s in cfg.sources], tmp_path / "images")
    ds, dropped = select_images(merged.dataset, cfg)
    assert [c.name for c in ds.categories] == ["Bus", "Car", "Motorcycle", "Truck"]
    assert len(ds.images) + len(dropped) == len(merged.dataset.images)
    reasons = [d["reason"] for d in dropped]
    assert sum(r.startswith("has a box of ambulance") for r in reasons) == 28  # the pool's ambulance images
    assert sum(r.startswith("reviewed:") for r in reasons) == len(cfg.exclude_images)
    names = {im.file_name.split("/")[-1] for im in ds.images}
    assert not names & set(cfg.exclude_images)
    test_names = {im.file_name for im in read_yolo(DATA / "vehicles_test")[0].images}
    assert not names & test_names


def test_starter_config_refuses_a_reviewed_name_that_matches_no_image(tmp_path):
    from roadsynth.datasets.merge import link_merged
    from roadsynth.datasets.registry import read_dataset
    from roadsynth.detectors.starter import select_images

    cfg = load_model(ROOT / "configs" / "starter.yaml", StarterConfig)
    cfg = cfg.model_copy(update={"exclude_images": {"no_such_image.jpg": "typo"}})
    merged = link_merged([(s.path.name, read_dataset(s)) for s in cfg.sources], tmp_path / "images")
    with pytest.raises(ValueError, match="no_such_image.jpg"):
        select_images(merged.dataset, cfg)


def test_leakage_check_reads_the_starter_manifest(tmp_path):
    from roadsynth.detectors.starter import file_digests
    from roadsynth.evaluation.leakage import manifest_leaks

    test = sorted((DATA / "vehicles_test" / "images").glob("*.jpg"))[:6]
    seen = sorted((DATA / "vehicles_starter" / "images").glob("*.jpg"))[:20]
    manifest = {"images": [{"file": p.name, **file_digests(p)} for p in seen]}
    assert manifest_leaks(test, manifest) == []
    # A test image the starter saw as-is, and one it saw re-encoded: both are caught.
    from PIL import Image

    Image.open(test[1]).save(tmp_path / "reencoded.jpg", quality=70)
    manifest["images"] += [{"file": "copied.jpg", **file_digests(test[0])},
                           {"file": "reencoded.jpg", **file_digests(tmp_path / "reencoded.jpg")}]
    leaks = manifest_leaks(test, manifest)
    assert [(lk.kind, lk.train_file) for lk in leaks] == [("starter-duplicate", "copied.jpg"),
                                                         ("starter-near-duplicate", "reencoded.jpg")]


def test_bundled_starter_never_saw_a_bundled_test_image():
    from roadsynth.detectors.starter import load_manifest
    from roadsynth.evaluation.leakage import manifest_leaks

    manifest = load_manifest(ROOT / "models" / "starter_vehicles" / "weights.pt")
    assert manifest is not None and manifest["classes"] == ["Bus", "Car", "Motorcycle", "Truck"]
    test = sorted((DATA / "vehicles_test" / "images").glob("*.jpg"))
    assert len(test) == 120 and manifest_leaks(test, manifest) == []
    assert not any("ambulance" in str(m).lower() for m in manifest["classes"])


def test_trained_cache_is_keyed_by_content_and_refuses_damaged_entries(tmp_path, monkeypatch):
    from roadsynth.detectors.reuse import TrainedCache, training_key

    ds, root = read_yolo(DATA / "deer")
    sp = DatasetSplit(ds, root)
    det = {"kind": "yolo", "model": "yolo11n.yaml", "weights": None, "epochs": 3}
    key, desc = training_key(det, sp, sp, seed=0)
    assert training_key(det, sp, sp, seed=0)[0] == key
    assert training_key({**det, "epochs": 4}, sp, sp, seed=0)[0] != key
    assert training_key(det, sp, sp, seed=1)[0] != key
    copy = tmp_path / "deer"
    shutil.copytree(DATA / "deer", copy)
    first = sorted((copy / "images").glob("*.jpg"))[0]
    first.write_bytes(first.read_bytes()[:-10] + b"0123456789")  # same records, other pixels
    assert training_key(det, DatasetSplit(read_yolo(copy)[0], copy / "images"), sp, seed=0)[0] != key
    # Training code that changed without a version bump (a stale cache once mixed in-process trainings from
    # an older checkout with fresh ones) gives another key.
    import roadsynth.detectors.reuse as reuse

    assert desc["training_code_sha256"] == reuse.training_code_sha256()
    monkeypatch.setattr(reuse, "training_code_sha256", lambda: "0" * 64)
    assert training_key(det, sp, sp, seed=0)[0] != key
    monkeypatch.undo()

    weights = tmp_path / "w" / "weights.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    (weights.parent / "classes.json").write_text(json.dumps([{"index": 0, "category_id": 1, "name": "deer"}]))
    cache = TrainedCache(tmp_path / "cache")
    assert cache.get(key) is None
    cache.put(key, weights, desc, {"train_seconds": 1.5})
    entry = cache.get(key)
    assert entry["train_seconds"] == 1.5 and entry["description"]["seed"] == 0
    (tmp_path / "cache" / key / "weights.pt").write_bytes(b"tampered")
    assert cache.get(key) is None
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]


@pytest.mark.slow  # two full generations (39 s): the integration layer's, not the fast layer's
def test_the_random_placement_arm_inserts_the_same_objects_in_the_same_frames(tmp_path):
    """The ablation may differ in placement only: same classes, cut-outs and counts per frame; what random
    placement rejects is placed again until it is in."""
    from collections import Counter
    from dataclasses import replace

    from roadsynth.experiment import prepare_generation
    from roadsynth.generate import generate_dataset

    cfg = load_config(ROOT / "configs" / "animals.yaml")
    g = cfg.generate.model_copy(update={"n_images": 8, "chunk_size": 4})
    geo = generate_dataset(cfg.model_copy(update={"generate": g}), tmp_path / "geo")
    follow = g.model_copy(update={"placement": replace(g.placement, mode="random"),
                                  "insert": g.insert.model_copy(update={"same_objects_as": tmp_path / "geo" /
                                                                        "annotations.json"})})
    rnd = generate_dataset(cfg.model_copy(update={"generate": follow}), tmp_path / "rnd")

    def objects(ds):
        return Counter((a.image_id, a.provenance.params["cutout_id"]) for a in ds.annotations if a.generated)

    assert objects(geo) and objects(rnd) == objects(geo)
    assert {a.provenance.params["placement"]["scale_source"] for a in rnd.annotations if a.generated} == {"random"}
    other = follow.model_copy(update={"seed": 1})  # another plan: the frames would not match
    with pytest.raises(ValueError, match="needs the same scenes, seed and n_images"):
        from roadsynth.generate.chunk import Worker
        from roadsynth.generate.plan import plan_jobs

        worker = Worker(cfg.model_copy(update={"generate": other}))
        worker._plan(plan_jobs(other, worker.sources)[0])

    exp = quickstart(tmp_path, arms=["real", "real+generated", "real+random"])
    (tmp_path / "exp").mkdir()
    split_dir = tmp_path / "exp" / "splits"
    from roadsynth.experiment import write_split

    from roadsynth.datasets.split import filter_dataset

    pool, root = read_yolo(DATA / "vehicles")
    write_split(DatasetSplit(filter_dataset(pool, [im.id for im in pool.images[:3]]), root), split_dir / "train.json")
    configs = prepare_generation(exp, tmp_path / "exp", split_dir / "train.json")
    follows = load_config(configs["generated_random"]).generate.insert.same_objects_as
    assert follows == tmp_path / "exp" / "generated" / "annotations.json"


def test_fill_in_matches_requests_one_to_one_and_gives_up_after_its_rounds():
    from roadsynth.generate.follow import fill_in
    from roadsynth.generators.base import Insertion, Rejection
    from roadsynth.geometry.placement import ObjectRequest
    from roadsynth.geometry.records import Placement

    def at(req, x):
        return Placement(req.category, Box(x, 0, 10, 10), (x + 5, 10), params=dict(req.params))

    def ok(p):
        return Insertion(p, p.box, np.ones((10, 10), bool), (0, 0, 10, 10), None, {})

    cows = [ObjectRequest("cow"), ObjectRequest("cow"), ObjectRequest("cow", 1.0, {"cutout_id": "c1"})]
    first = [ok(at(cows[0], 0)), Rejection(at(cows[1], 20), "too small")]  # c1 was not even placed
    calls = []

    def place(pending, inserted):
        calls.append((len(pending), len(inserted)))
        return [at(r, 40 + 20 * k) for k, r in enumerate(pending)], []

    results, unplaced = fill_in(cows, first, place, lambda ps, inserted: [ok(p) for p in ps])
    assert calls == [(2, 1)] and sum(isinstance(r, Insertion) for r in results) == 3 and unplaced == []
    calls.clear()
    results, unplaced = fill_in(cows, first, place, lambda ps, inserted: [Rejection(p, "no") for p in ps], rounds=3)
    assert calls == [(2, 1)] * 3 and sum(isinstance(r, Insertion) for r in results) == 1  # never counts twice


def test_re_placed_objects_see_the_inserted_ones_as_existing_and_the_ego_key_stays_the_ego():
    from roadsynth.generate.follow import with_boxes
    from roadsynth.generate.plan import frame_occluders
    from roadsynth.generators.base import Insertion
    from roadsynth.geometry.ego import EGO_KEY, EgoMask
    from roadsynth.geometry.records import Placement
    from roadsynth.generate.scenes import SceneFrame

    near = Placement("cow", Box(50, 50, 10, 10), (55, 60))
    inserted = [Insertion(near, near.box, np.ones((10, 10), bool), (50, 50, 60, 60), None, {})]
    frame = with_boxes(SceneFrame(ImageRecord(1, "a.jpg", 100, 100), 100, 100, [(3, Box(0, 0, 10, 10))]), inserted)
    assert frame.boxes == [(3, Box(0, 0, 10, 10)), (4, Box(50, 50, 10, 10))]
    ego = np.zeros((100, 100), bool)
    ego[90:] = True
    behind = Placement("sheep", Box(45, 40, 10, 12), (50, 52), occluders=(4,))
    occluders = frame_occluders(frame, [behind], EgoMask(ego, "config-polygon"))
    assert occluders[4] == Box(50, 50, 10, 10) and occluders[EGO_KEY] is ego  # drawn behind the nearer cow
