import pytest

from roadsynth.datasets.records import Annotation, Box, Category, Dataset, ImageRecord
from roadsynth.datasets.sampling import SceneFilter, select_images


def ds() -> Dataset:
    images = tuple(ImageRecord(i, f"{i}.jpg", 100 * i, 100, {"scene": "a" if i < 3 else "b"}) for i in range(1, 5))
    anns = (Annotation(1, 1, 1, Box(0, 0, 10, 10)), Annotation(2, 2, 1, Box(0, 0, 40, 40)),
            Annotation(3, 2, 2, Box(0, 0, 5, 5)), Annotation(4, 3, 2, Box(0, 0, 5, 5)))
    return Dataset(images, anns, (Category(1, "Car"), Category(2, "Person")))


def ids(flt: SceneFilter) -> list[int]:
    return [im.id for im in select_images(ds(), flt)]


def test_filters():
    assert ids(SceneFilter()) == [1, 2, 3, 4]
    assert ids(SceneFilter(require_categories=("car",))) == [1, 2]
    assert ids(SceneFilter(require_categories=("car",), min_box_area=500)) == [2]
    assert ids(SceneFilter(exclude_categories=("person",))) == [1, 4]
    assert ids(SceneFilter(max_objects=1)) == [1, 3, 4]
    assert ids(SceneFilter(min_width=250)) == [3, 4]
    assert ids(SceneFilter(attributes={"scene": "b"})) == [3, 4]


def test_lookups_by_image_id():
    d = ds()
    assert d.image(3).file_name == "3.jpg"
    assert [a.id for a in d.annotations_of(2)] == [2, 3] and d.annotations_of(4) == []
    d.annotations_of(2).clear()  # callers get their own list; the index stays intact
    assert [a.id for a in d.annotations_of(2)] == [2, 3]
    with pytest.raises(KeyError, match="image id 9 is not in the dataset"):
        d.image(9)
    # A changed copy indexes its own records, and equality still compares records only.
    fewer = d.with_(annotations=d.annotations[:1])
    assert fewer.annotations_of(2) == [] and d == ds()
