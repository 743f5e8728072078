"""One source of defaults: a component built from its config section takes the section's fields by name
(`config.base.section_kwargs`), and where a Python caller leaves a parameter out, the constructor's default
is the section's."""

from __future__ import annotations

import inspect

import pytest
from pydantic_core import PydanticUndefined

from roadsynth.config import DetectorConfig, InpaintConfig, InsertConfig


def pairs():
    from roadsynth.detectors.yolo_ultralytics import YoloDetector
    from roadsynth.generators.inpaint_diffusers import InpaintInserter
    from roadsynth.generators.paste import PasteInserter

    return [(PasteInserter, InsertConfig), (InpaintInserter, InpaintConfig), (YoloDetector, DetectorConfig)]


@pytest.mark.parametrize("k", range(3))
def test_constructor_defaults_are_the_config_sections(k):
    component, section = pairs()[k]
    params = inspect.signature(component).parameters
    shared = [name for name in section.model_fields if name in params]
    assert len(shared) >= 3, (component, shared)
    for name in shared:
        field, param = section.model_fields[name], params[name]
        if field.default is PydanticUndefined or param.default is inspect.Parameter.empty:
            continue  # required on both sides
        if param.default is None and field.default in ({}, []):
            continue  # an empty container, as None (a mutable default would be shared between calls)
        assert param.default == field.default, f"{component.__name__}({name}=...) defaults to {param.default!r}, " \
                                               f"but {section.__name__}.{name} to {field.default!r}"


def test_sections_build_their_components_by_name():
    from roadsynth.generators.cutouts import CutoutBank
    from roadsynth.generators.paste import PasteInserter

    cfg = InsertConfig(categories={"deer": 1}, blend="poisson", feather_px=4.0, shadow=False)
    p = PasteInserter.from_config(cfg, CutoutBank())
    assert (p.blend, p.feather_px, p.shadow, p.match, p.limits) == ("poisson", 4.0, False, cfg.match, None)
    from roadsynth.detectors import make_detector

    det = make_detector(DetectorConfig(imgsz=64, epochs=2, val=True, train_args={"lr0": 0.01}))
    assert (det.imgsz, det.epochs, det.val, det.extra) == (64, 2, True, {"lr0": 0.01})
