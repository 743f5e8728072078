"""Score every inserted object with a detector you already trust.

The pixel verifier (verify.py) proves that something was drawn inside the box; it cannot tell a deer
from a brown smear. A detector trained on real data can: for each inserted object this records the best
score of a detection of the same class overlapping its box (`detector_score`, `detector_iou`) and
whether that clears the thresholds (`detector_found`). Objects are kept either way: the scores go into
the annotation's provenance, where the review UI and downstream filters can use them.

Torch-free: the detector is any function from RGB frames to per-frame `Prediction` lists (`Detector.load`,
e.g. `make_detector(cfg.generate.insert.detector_check).load(weights)`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from roadsynth.detectors.base import Prediction
from roadsynth.generators.base import Insertion, Rejection

Detections = list[Prediction]


class DetectorCheck:
    def __init__(self, detect: Callable[[Sequence[np.ndarray]], list[Detections]], names: Iterable[str],
                 categories: Iterable[str], *, class_map: Mapping[str, str] | None = None, min_score: float = 0.25,
                 min_iou: float = 0.5, source: str = "detector"):
        from roadsynth.config import DetectorCheckConfig
        from roadsynth.config.base import check_limits

        check_limits(DetectorCheckConfig, min_score=min_score, min_iou=min_iou)  # the limits the config declares
        known = {n.lower() for n in names}
        mapped = {k.lower(): v.lower() for k, v in (class_map or {}).items()}
        self.target = {c.lower(): mapped.get(c.lower(), c.lower()) for c in categories}  # category -> class
        missing = sorted(c for c, t in self.target.items() if t not in known)
        if missing:
            raise ValueError(f"{source}: the detector has no class for {missing}; its classes are {sorted(known)} "
                             "(map inserted categories to them with `class_map`)")
        self.detect, self.min_score, self.min_iou, self.source = detect, min_score, min_iou, source

    def score(self, images: Sequence[np.ndarray], results: Sequence[Sequence[Insertion | Rejection]],
              ) -> list[list[Insertion | Rejection]]:
        """`results[f]` are frame f's insertion results (in `images[f]`); Insertions come back with scores."""
        todo = [f for f, rs in enumerate(results) if any(isinstance(r, Insertion) for r in rs)]
        detections = dict(zip(todo, self.detect([images[f] for f in todo]) if todo else []))
        out = []
        for f, rs in enumerate(results):
            out.append([self._one(r, detections.get(f, [])) if isinstance(r, Insertion) else r for r in rs])
        return out

    def _one(self, r: Insertion, dets: Detections) -> Insertion:
        target = self.target.get(r.placement.category.lower(), r.placement.category.lower())
        best_score, best_iou = 0.0, 0.0
        for d in dets:
            if d.name.lower() != target:
                continue
            iou = r.box.iou(d.box)
            best_iou = max(best_iou, iou)
            if iou >= self.min_iou:
                best_score = max(best_score, d.score)
        scores = {**r.scores, "detector": self.source, "detector_class": target, "detector_score": round(best_score, 4),
                  "detector_iou": round(best_iou, 3), "detector_found": best_score >= self.min_score}
        return replace(r, scores=scores)
