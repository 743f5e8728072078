from hypothesis import given, settings
from hypothesis import strategies as st

from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.datasets.split import split_dataset


def make(scenes: list[int]) -> Dataset:
    images = tuple(ImageRecord(i + 1, f"{i}.jpg", 10, 10, {"scene": f"s{s}"}) for i, s in enumerate(scenes))
    anns = tuple(Annotation(i + 1, i + 1, 1, Box(0, 0, 2, 2)) for i in range(len(scenes)))
    return Dataset(images, anns, (Category(1, "x"),))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=80), st.integers(0, 5), st.floats(0.1, 0.9))
def test_split_keeps_scenes_together_and_covers_everything(scenes, seed, frac):
    ds = make(scenes)
    parts = split_dataset(ds, {"train": 1 - frac, "test": frac}, seed=seed)
    ids = [im.id for p in parts.values() for im in p.images]
    assert sorted(ids) == [im.id for im in ds.images]
    scene_sets = [{im.scene for im in p.images} for p in parts.values()]
    assert not scene_sets[0] & scene_sets[1]
    for p in parts.values():  # annotations follow their images
        assert {a.image_id for a in p.annotations} <= {im.id for im in p.images}
    assert parts == split_dataset(ds, {"train": 1 - frac, "test": frac}, seed=seed)


def test_split_sizes_track_fractions_with_singleton_scenes():
    parts = split_dataset(make(list(range(100))), {"train": 0.7, "test": 0.3}, seed=1)
    assert (len(parts["train"].images), len(parts["test"].images)) == (70, 30)
