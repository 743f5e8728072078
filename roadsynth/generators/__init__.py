"""Generators: inserters (paste, diffusion inpainting) and restylers behind small protocols (base.py).

A new insertion backend is one new module with a class that satisfies `Inserter`, plus one line in
`make_inserter`; heavy libraries are imported only by the backend that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roadsynth.config import InsertConfig
    from roadsynth.generators.base import Inserter
    from roadsynth.generators.cutouts import CutoutBank


def make_inserter(cfg: "InsertConfig", bank: "CutoutBank") -> "Inserter":
    """The inserter named by `cfg.method`, configured from `cfg`."""
    if cfg.method == "paste":
        from roadsynth.generators.paste import PasteInserter

        return PasteInserter.from_config(cfg, bank)
    if cfg.method == "inpaint":
        from roadsynth.generators.inpaint_diffusers import InpaintInserter  # torch/diffusers only for this method

        return InpaintInserter.from_config(cfg.inpaint, bank)
    raise ValueError(f"`insert.method` must be one of ['paste', 'inpaint'], but got {cfg.method!r}")
