"""Appearance steps of a generation run: restyle real vehicles (before insertion), then a weather condition.

Vehicles are restyled before objects are inserted, so an inserted animal in front of a car is never
repainted; weather comes last so inserted objects get the same rain or fog as the scene. Both draw from
their own random stream (derived from the frame's seed), so switching them on does not move a single
inserted object. The diffusers and albumentations adapters are imported only when a step is configured.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from roadsynth.config import GenerateConfig
from roadsynth.datasets.io import jsonable
from roadsynth.datasets.records import Annotation
from roadsynth.generators.restyle import PaintRestyler


class Appearance:
    """Per-worker holder of the configured restylers (pipelines load once, on first use)."""

    def __init__(self, g: GenerateConfig, category_names: Sequence[str]):
        self.g = g
        self.names = {i + 1: n for i, n in enumerate(category_names)}
        self._vehicles = None
        self._weather: dict[tuple[str, int], Any] = {}

    def restyle_vehicles(self, rgb: np.ndarray, anns: list[Annotation], seed: int):
        """(image, annotations, record) after restyling some real vehicles of one frame (or unchanged)."""
        r = self.g.restyle
        rng = np.random.default_rng([seed, 101])
        if r is None or rng.random() >= r.frame_prob:
            return rgb, anns, None
        out = self._vehicle_restyler().restyle(rgb, anns, rng)
        record = jsonable({"edits": out.edits, "rejected": out.rejected})
        return out.image, list(out.annotations), record

    def apply_weather(self, rgb: np.ndarray, anns: list[Annotation], seed: int):
        """(image, annotations, tags) with one condition drawn by weight; `clear` leaves the frame as it is."""
        w = self.g.weather
        if w is None:
            return rgb, anns, {}
        rng = np.random.default_rng([seed, 202])
        names = list(w.conditions)
        p = np.array([w.conditions[n] for n in names], float)
        condition = names[int(rng.choice(len(names), p=p / p.sum()))]
        if condition == "clear":
            return rgb, anns, {"condition": "clear"}
        severity = int(rng.integers(w.severity[0], w.severity[1] + 1))
        out = self._weather_restyler(condition, severity).restyle(rgb, anns, rng)
        tags = dict(out.tags)
        if out.rejected:
            tags["condition_dropped_labels"] = out.rejected
        return out.image, list(out.annotations), jsonable(tags)

    def _vehicle_restyler(self):
        if self._vehicles is None:
            r = self.g.restyle
            styles = list(r.styles)
            if r.method == "paint":
                self._vehicles = PaintRestyler(styles, self.names, categories=r.categories, min_box_px=r.min_box_px,
                                               max_objects=r.max_objects, strength=r.strength)
            else:
                from roadsynth.generators.restyle_diffusers import VehicleRestyler

                self._vehicles = VehicleRestyler(
                    str(r.model), styles, self.names, categories=r.categories, min_box_px=r.min_box_px,
                    max_objects=r.max_objects, strength=r.strength, steps=r.steps, guidance_scale=r.guidance_scale,
                    native=r.native, context=r.context, batch_size=r.batch_size, min_edge_fscore=r.min_edge_fscore,
                    max_edge_ratio=r.max_edge_ratio, min_change=r.min_change, device=r.device,
                    controlnet=str(r.controlnet) if r.controlnet else None, config=str(r.config) if r.config else None)
        return self._vehicles

    def _weather_restyler(self, condition: str, severity: int):
        w = self.g.weather
        key = (condition, severity if w.method == "albumentations" else 0)
        if key not in self._weather:
            if w.method == "albumentations":
                from roadsynth.generators.weather import WeatherRestyler

                self._weather[key] = WeatherRestyler(condition, severity)
            else:
                from roadsynth.generators.restyle_diffusers import DiffusionWeather

                d = w.diffusion
                self._weather[key] = DiffusionWeather(
                    str(d.model), condition, d.prompts[condition], strength=d.strength, steps=d.steps,
                    guidance_scale=d.guidance_scale, work_px=d.work_px, detail=d.detail, device=d.device,
                    config=str(d.config) if d.config else None)
        return self._weather[key]

