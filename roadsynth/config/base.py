"""The base of every config section: unknown keys are errors, values are frozen."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_limits(section: type[BaseModel], **values: Any) -> None:
    """Hold `values` that a Python caller gives a component to the limits its config `section` declares for
    fields of the same names (ge / gt / le / lt, multiple_of, a Literal's choices): each limit is written once,
    in the section; a config is checked by pydantic when it loads, a direct caller here, with a diffusers-style
    message ("`strength` must be in [0, 1], but got 1.7")."""
    for name, value in values.items():
        field = section.model_fields[name]
        if value is None and _allows_none(field.annotation):
            continue
        choices = _literal_choices(field.annotation)
        if choices and value not in choices:
            raise ValueError(f"`{name}` must be one of {', '.join(map(str, choices))}, but got {value!r}")
        lo = hi = None
        for m in field.metadata:
            if getattr(m, "multiple_of", None) and value % m.multiple_of:
                raise ValueError(f"`{name}` must be a multiple of {m.multiple_of}, but got {value}")
            for bound in ("ge", "gt"):
                if getattr(m, bound, None) is not None:
                    lo = (bound, getattr(m, bound))
            for bound in ("le", "lt"):
                if getattr(m, bound, None) is not None:
                    hi = (bound, getattr(m, bound))
        below = lo is not None and (value < lo[1] if lo[0] == "ge" else value <= lo[1])
        above = hi is not None and (value > hi[1] if hi[0] == "le" else value >= hi[1])
        if below or above:
            if lo is not None and hi is not None:
                left, right = "[" if lo[0] == "ge" else "(", "]" if hi[0] == "le" else ")"
                raise ValueError(f"`{name}` must be in {left}{lo[1]:g}, {hi[1]:g}{right}, but got {value}")
            bound, limit = lo or hi
            sign = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[bound]
            raise ValueError(f"`{name}` must be {sign} {limit:g}, but got {value}")


def _literal_choices(annotation: Any) -> tuple:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    return tuple(c for a in typing.get_args(annotation) for c in _literal_choices(a))


def _allows_none(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation)


def section_kwargs(section: BaseModel, component: Callable) -> dict[str, Any]:
    """The fields of a config `section` that `component` takes as keyword arguments of the same name, as the
    section holds them: a component is built from its section without copying fields one by one, and its
    constructor's defaults are the section's (tests/unit/test_config_defaults.py holds them equal)."""
    params = inspect.signature(component).parameters
    return {k: getattr(section, k) for k in type(section).model_fields if k in params}


class ReaderOptions(Section):
    """What the dataset readers (datasets/registry.py) take beyond a path: mixed into every section that names a
    dataset on disk with a `format`. Which options a format takes, and whether it needs `images_root`, is
    declared by its reader (`Format.options`, `Format.needs_images_root`)."""

    version: str | None = Field(None, description="nuscenes / nuimages: the table folder, e.g. v1.0-trainval "
                                                   "(default v1.0-mini)")
    split: str | None = Field(None, description="cityscapes: the leftImg8bit / gtFine split (default train)")
    class_map: dict[str, str] = Field({}, description="kitti, nuscenes, nuimages, bdd100k, cityscapes: source "
                                                      "class -> output name (unmapped unknown classes are reported)")

    @model_validator(mode="after")
    def _check_reader_options(self) -> "ReaderOptions":
        from roadsynth.datasets.registry import FORMATS

        fmt = FORMATS.get(getattr(self, "format", None))
        for key in ("version", "split", "class_map"):
            if getattr(self, key) and (fmt is None or key not in fmt.options):
                takes = [f for f, x in FORMATS.items() if key in x.options]
                raise ValueError(f"`{key}` applies to format {' / '.join(takes)} only, but format is {self.format}")
        if fmt is not None and fmt.needs_images_root and getattr(self, "images_root", None) is None:
            raise ValueError(f"`images_root` is required for format {fmt.name} ({getattr(self, 'path', '')})")
        return self

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments of `datasets.registry.read_format` (only those that are set)."""
        return {k: v for k, v in (("version", self.version), ("split", self.split),
                                  ("class_map", dict(self.class_map))) if v}
