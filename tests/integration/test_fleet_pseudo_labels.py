"""configs/dashcam.yaml as it is: the bundled starter pseudo-labels the fleet frames' vehicles."""

from __future__ import annotations

import pytest

from roadsynth.config import load_config
from tests.conftest import ROOT


@pytest.mark.slow
def test_the_starter_pseudo_labels_fleet_frames_and_new_objects_keep_off_them(tmp_path):
    from roadsynth.generate import generate_dataset

    cfg = load_config(ROOT / "configs" / "dashcam.yaml")
    cfg = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"n_images": 18, "chunk_size": 6})})
    ds = generate_dataset(cfg, tmp_path / "out")
    assert all(im.attributes["labels_complete"] and im.attributes["labels_from"] == "pseudo-label" for im in ds.images)
    pseudo = [a for a in ds.annotations if a.provenance and a.provenance.method == "pseudo-label"]
    assert pseudo, "the starter found no vehicle in 18 dashcam frames"
    assert all(a.provenance.params["score"] >= 0.25 and a.provenance.source.endswith("weights.pt") for a in pseudo)
    by_image = ds.annotations_by_image()
    for a in pseudo:
        for b in by_image[a.image_id]:
            if b.generated:  # a new object never covers a found vehicle (it may stand behind a nearer one)
                occluders = b.provenance.params["placement"]["occluders"]
                assert b.bbox.intersection(a.bbox) <= 1e-6 or occluders, (a.bbox, b.bbox)
