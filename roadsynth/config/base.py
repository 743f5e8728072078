"""The base of every config section: unknown keys are errors, values are frozen."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
