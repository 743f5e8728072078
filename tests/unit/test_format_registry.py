"""One format registry: the CLI, configs, scene sources and experiment data take the formats from it, and no
module outside it and the readers lists them."""

from __future__ import annotations

import ast
import typing

import pytest

from roadsynth.datasets.registry import DATASET_FORMATS, FORMATS, FRAME_FORMATS, SCENE_FORMATS, read_format
from tests.conftest import ROOT

READERS = {"datasets/registry.py", "datasets/yolo.py", "datasets/coco.py", "datasets/formats/__init__.py",
           "datasets/formats/kitti.py", "datasets/formats/nuscenes.py", "datasets/formats/bdd100k.py",
           "datasets/formats/cityscapes.py"}
# "yolo" and "coco" also name a detector kind and a box convention, so only the others are searched for.
NAMES = {"kitti", "nuscenes", "nuimages", "bdd100k", "cityscapes"}


def test_every_consumer_takes_its_format_list_from_the_registry():
    from roadsynth.cli.data import CUTOUT_FORMATS, ImportFormat
    from roadsynth.config import DatasetSource
    from roadsynth.config.generate import SceneSource

    assert set(NAMES) < set(DATASET_FORMATS) == set(FORMATS)
    assert typing.get_args(DatasetSource.model_fields["format"].annotation) == DATASET_FORMATS
    assert typing.get_args(SceneSource.model_fields["format"].annotation) == SCENE_FORMATS == (*FRAME_FORMATS,
                                                                                                 *DATASET_FORMATS)
    assert tuple(f.value for f in ImportFormat) == DATASET_FORMATS
    assert CUTOUT_FORMATS[:len(DATASET_FORMATS)] == DATASET_FORMATS


def test_no_module_outside_the_registry_and_the_readers_names_a_format():
    found = []
    for path in sorted((ROOT / "roadsynth").rglob("*.py")):
        rel = str(path.relative_to(ROOT / "roadsynth"))
        if rel in READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == [], "format names belong in datasets/registry.py and the reader modules:\n" + "\n".join(found)


def test_options_and_images_root_are_checked_as_each_reader_declares(tmp_path):
    from roadsynth.config import DatasetSource

    assert FORMATS["nuscenes"].options == ("version", "class_map") and FORMATS["coco"].needs_images_root
    with pytest.raises(ValueError, match="`version` applies to format nuscenes / nuimages only, but format is kitti"):
        DatasetSource(format="kitti", path=tmp_path, version="v1.0-trainval")
    with pytest.raises(ValueError, match="`images_root` is required for format bdd100k"):
        DatasetSource(format="bdd100k", path=tmp_path / "labels.json")
    from roadsynth.config.generate import SceneSource

    with pytest.raises(ValueError, match="`images_root` is required for format coco"):  # refused at load, not mid-run
        SceneSource(name="cam", format="coco", path=tmp_path / "labels.json")
    with pytest.raises(ValueError, match="`split` does not apply to format kitti"):
        read_format("kitti", tmp_path, split="val")
    with pytest.raises(ValueError, match="`format` must be one of yolo, coco, kitti"):
        read_format("pascal", tmp_path)
