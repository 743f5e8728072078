"""One source of defaults: a component built from its config section takes the section's fields by name
(`config.base.section_kwargs`), and where a Python caller leaves a parameter out, the constructor's default
is the section's."""

from __future__ import annotations

import inspect
import typing

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


@pytest.mark.parametrize("section,name,values", [
    (InsertConfig, "feather_px", [-1, 0, 2.5, 50, 50.5]),
    (InsertConfig, "blend", ["feather", "poisson", "none", "magic"]),
    (InpaintConfig, "strength", [-0.1, 0, 0.7, 1, 1.7]),
    (InpaintConfig, "mask_shape", [None, "box", "cutout", "star"]),
    (DetectorConfig, "imgsz", [0, 31, 32, 100, 256]),
    (DetectorConfig, "epochs", [0, 1, 5]),
])
def test_components_refuse_exactly_what_their_config_refuses(section, name, values):
    """A limit is written once, in the section: a direct caller is held to it by `check_limits` with the
    message a person reads, and it refuses the values pydantic refuses in a config, no more, no fewer."""
    from pydantic import TypeAdapter, ValidationError

    from roadsynth.config.base import check_limits

    field = section.model_fields[name]
    adapter = TypeAdapter(typing.Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation)
    for v in values:
        try:
            adapter.validate_python(v)
            config_ok = True
        except ValidationError:
            config_ok = False
        try:
            check_limits(section, **{name: v})
            component_ok = True
        except ValueError as e:
            component_ok = False
            assert str(e).startswith(f"`{name}` must be ") and str(e).endswith(f"but got {v!r}" if isinstance(v, str)
                                                                               else f"but got {v}")
        assert component_ok == config_ok, (name, v)


def test_direct_callers_get_the_configs_limits_with_a_readable_message():
    from roadsynth.detectors.yolo_ultralytics import YoloDetector
    from roadsynth.generators.cutouts import CutoutBank
    from roadsynth.generators.paste import PasteInserter

    with pytest.raises(ValueError, match=r"`feather_px` must be in \[0, 50\], but got 70"):
        PasteInserter(CutoutBank(), feather_px=70)
    with pytest.raises(ValueError, match="`imgsz` must be a multiple of 32, but got 100"):
        YoloDetector(imgsz=100)
