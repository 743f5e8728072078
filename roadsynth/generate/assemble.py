"""The finished dataset: chunk records merged in index order into annotations.json, manifest.json and
the quarantine of bad inputs."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from roadsynth.config import Config
from roadsynth.datasets.coco import annotation_from_dict, image_from_dict, write_coco
from roadsynth.datasets.io import IMAGE_SUFFIXES, atomic_write_bytes, atomic_write_json, read_json
from roadsynth.datasets.records import PSEUDO_LABEL, Annotation, Category, Dataset, ImageRecord
from roadsynth.generate.resume import chunk_path
from roadsynth.generate.sources import Sources, output_categories
from roadsynth.generators.realism import summarize

QUARANTINE_MAX_BYTES = 64 * 2**20


def read_chunks(out_dir: Path, n_chunks: int) -> list[dict]:
    return [read_json(chunk_path(out_dir, ci), "chunk record") for ci in range(n_chunks)]


def assemble(cfg: Config, out_dir: Path, n_chunks: int, sources: Sources, chunks: Sequence[dict] | None = None
             ) -> Dataset:
    """Merge chunk records (in index order) into annotations.json + manifest.json. `chunks` are the chunk
    payloads when the caller already holds them (the UI appends one sample at a time)."""
    g = cfg.generate
    categories = tuple(Category(i + 1, n) for i, n in enumerate(output_categories(g, sources)))
    chunks = read_chunks(out_dir, n_chunks) if chunks is None else chunks
    images, anns, failures = [], [], []
    for payload in chunks:
        failures += payload["failures"]
        images += [image_from_dict(im) for im in payload["images"]]
        anns += [replace(annotation_from_dict(a), id=len(anns) + k + 1) for k, a in enumerate(payload["annotations"])]
    ds = Dataset(tuple(images), tuple(anns), categories, info={
        "description": f"roadsynth generated dataset `{cfg.name}`", "config_digest": cfg.digest(),
    })
    write_coco(ds, out_dir / "annotations.json")
    generated = [a for a in anns if a.generated and a.provenance.method != "restyle"]  # inserted
    for src, (sds, _) in zip(g.scenes, sources):  # frames that could not even be indexed
        failures += [{"index": None, "source": src.name, "file": pr["file"], "error": pr["error"]}
                     for pr in sds.info.get("problems", []) if isinstance(pr, dict)]
    failures = quarantine(out_dir, failures)
    manifest = {
        "name": cfg.name, "config_digest": cfg.digest(), "images": len(images), "annotations": len(anns),
        "generated_objects": len(generated),
        "generated_per_category": {c.name: sum(a.category_id == c.id for a in generated) for c in categories},
        "rejected_objects": sum(len(im.attributes.get("rejected", [])) for im in images),
        "restyled_objects": sum(len(im.attributes.get("restyle", {}).get("edits", [])) for im in images),
        "restyle_refused": sum(len(im.attributes.get("restyle", {}).get("rejected", [])) for im in images),
        "conditions": dict(sorted(Counter(str(im.attributes["condition"]) for im in images
                                          if "condition" in im.attributes).items())),
        "pseudo_labels": sum(a.provenance is not None and a.provenance.method == PSEUDO_LABEL for a in anns),
        "images_without_complete_labels": sum(im.attributes.get("labels_complete") is False for im in images),
        "ego_warnings": [w for src in g.scenes if (w := src.ego_warning)],
        "ego_sources": dict(sorted(Counter(str(im.attributes.get("ego", {}).get("source", "none"))
                                           for im in images).items())),
        "region_sources": dict(sorted(Counter(str(im.attributes.get("region_source")) for im in images).items())),
        "realism": realism_audit(images, generated),
        "cutouts_refused": next((c["cutouts_refused"] for c in chunks if "cutouts_refused" in c), {}),
        "failures": failures, "chunks": n_chunks,
    }
    atomic_write_json(out_dir / "manifest.json", manifest, indent=2)
    return ds


def realism_audit(images: Sequence[ImageRecord], inserted: Sequence[Annotation]) -> dict:
    """Realism scores of inserted objects against the real labelled objects of the same frames (medians,
    overall and in dark frames; see generators/realism.py)."""
    dark = {im.id: bool(im.attributes.get("dark")) for im in images}
    ins = [{**a.provenance.params.get("verifier", {}), "dark": dark.get(a.image_id), "frame": a.image_id}
           for a in inserted]
    real = [{**r, "dark": dark[im.id], "frame": im.id} for im in images for r in im.attributes.get("realism_real", [])]
    return summarize(ins, real)


def quarantine(out_dir: Path, failures: list[dict]) -> list[dict]:
    """Copy each bad input file into `out_dir/quarantine/` beside a `failures.json` listing its error.

    The run went on without them; the copies let a person open exactly what failed even after the source
    folder changes. Returns the failures with a `quarantined` path (relative to `out_dir`) where copied.
    """
    qdir = out_dir / "quarantine"
    if not failures:
        if (qdir / "failures.json").exists():  # a resumed run that no longer fails keeps no stale list
            atomic_write_json(qdir / "failures.json", [], indent=1)
        return failures
    qdir.mkdir(exist_ok=True)
    out, names = [], {}
    for f in failures:
        src = Path(f["file"])
        f = dict(f)
        # Image files are copied; a bad annotation's error names its record in the (unchanged) source file.
        if src.suffix.lower() in IMAGE_SUFFIXES and src.is_file() and src.stat().st_size <= QUARANTINE_MAX_BYTES:
            name = names.setdefault(str(src), f"{len(names) + 1:05d}_{src.name}")
            if not (qdir / name).exists():
                atomic_write_bytes(qdir / name, src.read_bytes())
            f["quarantined"] = f"quarantine/{name}"
        out.append(f)
    atomic_write_json(qdir / "failures.json", out, indent=1)
    return out
