"""The base of every config section: unknown keys are errors, values are frozen."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_READER_FORMATS = ("kitti", "nuscenes", "nuimages", "bdd100k", "cityscapes")


class ReaderOptions(Section):
    """What the readers of the public driving datasets' layouts (datasets/formats) take beyond a path: mixed into
    every section that names a dataset on disk with a `format`."""

    version: str | None = Field(None, description="nuscenes / nuimages: the table folder, e.g. v1.0-trainval "
                                                   "(default v1.0-mini)")
    split: str | None = Field(None, description="cityscapes: the leftImg8bit / gtFine split (default train)")
    class_map: dict[str, str] = Field({}, description="kitti, nuscenes, nuimages, bdd100k, cityscapes: source "
                                                      "class -> output name (unmapped unknown classes are reported)")

    @model_validator(mode="after")
    def _check_reader_options(self) -> "ReaderOptions":
        fmt = getattr(self, "format", None)
        for key, formats in (("version", ("nuscenes", "nuimages")), ("split", ("cityscapes",)),
                             ("class_map", _READER_FORMATS)):
            if getattr(self, key) and fmt not in formats:
                raise ValueError(f"`{key}` applies to format {' / '.join(formats)} only, but format is {fmt}")
        return self

    def reader_options(self) -> dict[str, Any]:
        """Keyword arguments of `datasets.formats.read_format` (only those that are set)."""
        return {k: v for k, v in (("version", self.version), ("split", self.split),
                                  ("class_map", dict(self.class_map))) if v}
