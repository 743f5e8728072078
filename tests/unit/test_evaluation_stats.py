import numpy as np
import pytest

from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.evaluation.coco_metrics import evaluate_detections
from roadsynth.evaluation.stats import PerImageEval, paired_bootstrap, verdict


def synthetic(n_images: int, seed: int, quality: float) -> tuple[Dataset, list[dict]]:
    """GT boxes on 3 categories (non-contiguous ids) and detections whose localisation improves with `quality`."""
    rng = np.random.default_rng(seed)
    images, anns, dets = [], [], []
    for i in range(1, n_images + 1):
        images.append(ImageRecord(i, f"{i}.jpg", 640, 480))
        for _ in range(int(rng.integers(1, 5))):
            cat = int(rng.choice([1, 3, 7]))
            x, y, w, h = rng.uniform(0, 500), rng.uniform(0, 380), rng.uniform(20, 140), rng.uniform(20, 100)
            anns.append(Annotation(len(anns) + 1, i, cat, Box(x, y, w, h), iscrowd=int(rng.random() < 0.02)))
            if rng.random() < 0.85:
                j = rng.normal(0, (1 - quality) * 0.25, 4) * [w, h, w, h]
                dcat = cat if rng.random() > 0.1 else int(rng.choice([1, 3, 7]))
                dets.append({"image_id": i, "category_id": dcat, "bbox": [x + j[0], y + j[1], w + j[2], h + j[3]],
                             "score": float(np.clip(rng.normal(0.3 + 0.5 * quality, 0.2), 0.01, 1))})
        for _ in range(int(rng.integers(0, 3))):  # false positives
            dets.append({"image_id": i, "category_id": int(rng.choice([1, 3, 7])),
                         "bbox": [rng.uniform(0, 500), rng.uniform(0, 380), 40, 40], "score": float(rng.uniform(0, 0.6))})
    return Dataset(tuple(images), tuple(anns), (Category(1, "a"), Category(3, "b"), Category(7, "c"))), dets


def test_per_image_ap_reproduces_cocoeval_exactly():
    gt, dets = synthetic(150, 0, 0.6)
    coco = evaluate_detections(gt, dets, backend="pycocotools").stats
    mine = PerImageEval(gt, dets).ap()
    assert mine["mAP50_95"] == pytest.approx(coco["mAP50_95"], abs=1e-12)
    assert mine["mAP50"] == pytest.approx(coco["mAP50"], abs=1e-12)


def test_duplicated_images_via_weights_match_a_dataset_with_copies():
    gt, dets = synthetic(40, 1, 0.5)
    w = np.zeros(40)
    w[:10] = 2  # the first 10 images twice, the rest not at all
    # Build the same thing explicitly: copies of images 1..10 with new ids.
    images = list(gt.images[:10]) + [ImageRecord(100 + im.id, im.file_name, im.width, im.height) for im in gt.images[:10]]
    anns = [a for a in gt.annotations if a.image_id <= 10]
    anns += [Annotation(1000 + a.id, 100 + a.image_id, a.category_id, a.bbox, iscrowd=a.iscrowd) for a in anns]
    d = [r for r in dets if r["image_id"] <= 10]
    d += [{**r, "image_id": 100 + r["image_id"]} for r in d]
    copies = Dataset(tuple(images), tuple(anns), gt.categories)
    explicit = evaluate_detections(copies, d, backend="pycocotools").stats["mAP50_95"]
    assert PerImageEval(gt, dets).ap(w)["mAP50_95"] == pytest.approx(explicit, abs=0.01)


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
    from roadsynth.evaluation.leakage import near_duplicates, provenance_leaks
    from roadsynth.datasets.records import Provenance
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
    from roadsynth.experiment import slice_metrics

    gt, dets = synthetic(120, 7, 0.5)
    images = tuple(ImageRecord(im.id, im.file_name, im.width, im.height, {"condition": "rain" if im.id % 3 else "fog"})
                   for im in gt.images)
    gt = gt.with_(images=images)
    rows = slice_metrics(gt, {"real": [PerImageEval(gt, dets)]}, ["condition"])
    fog = next(r for r in rows if r["value"] == "fog")
    sub = filter_dataset(gt, [im.id for im in gt.images if im.id % 3 == 0])
    expected = evaluate_detections(sub, [d for d in dets if d["image_id"] % 3 == 0], backend="pycocotools")
    assert fog["images"] == 40 and fog["real"] == pytest.approx(expected.stats["mAP50_95"], abs=1e-12)
