"""Fixtures shared by the generator tests: a cut-out bank of the bundled animals, a CamVid frame and placements."""

from __future__ import annotations

import pytest

from roadsynth.datasets.records import Box
from roadsynth.generators.cutouts import CutoutBank
from roadsynth.generators.cutout_sources import from_msrc, from_weizmann
from roadsynth.geometry.records import Placement
from tests.conftest import DATA

FRAME = DATA / "camvid" / "images" / "0016E5_04440.jpg"


@pytest.fixture(scope="session")
def bank() -> CutoutBank:
    return CutoutBank.concat([from_msrc(DATA / "cutouts" / "msrc_v2_animals", ["cow", "sheep", "dog"]),
                              from_weizmann(DATA / "cutouts" / "weizmann_horse")])


def place(cat: str, x: float, bottom: float, h: float, w: float | None = None) -> Placement:
    w = w or h * 1.4
    return Placement(category=cat, box=Box(x - w / 2, bottom - h, w, h), contact=(x, bottom))
