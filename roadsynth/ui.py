"""Review and demo UI (Gradio): generate samples, compare them with the original and a detector, curate.

Only widgets live here; everything they do is `roadsynth.review` (which runs the flows' own chunk code).
The server binds to 127.0.0.1 unless told otherwise and serves no files from disk: images go to the
browser as arrays, so nothing outside the dataset/run folders can be read through it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roadsynth.generators.bank import SORTS, BankReview
from roadsynth.review import DoseCurve, Review, Studio, detect, list_runs

METHODS = ["Original", "Ours (inpainting)", "Paste"]
BOX_MODES = ["None", "Generated", "All"]
OBJECT_COLUMNS = ["id", "category", "status", "method", "source", "prompt", "seed", "changed_frac_in_mask",
                  "mean_change_in_mask", "spill_frac", "detector_score", "detector_found", "box"]
DETECTOR_COLUMNS = ("detector_score", "detector_found")  # shown only for runs with a detector check


def _gradio():
    # Gradio's import otherwise phones home (analytics, version check) and Hugging Face may be contacted.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    private_temp_dir()
    import gradio as gr

    return gr


_TEMP: list[Path] = []


def private_temp_dir() -> Path:
    """Gradio's cache of rendered images in a folder only this user can read, removed when the UI exits
    (Gradio's default is a shared /tmp/gradio that outlives the process)."""
    if not _TEMP:
        folder = Path(tempfile.mkdtemp(prefix="roadsynth-ui-"))  # mode 0700
        os.environ["GRADIO_TEMP_DIR"] = str(folder)
        _TEMP.append(folder)
        atexit.register(remove_temp_dir)
    return _TEMP[0]


def remove_temp_dir() -> None:
    for folder in _TEMP:
        shutil.rmtree(folder, ignore_errors=True)
    _TEMP.clear()


def build_app(*, studio: Studio | None = None, dataset: Path | None = None, experiment: Path | None = None,
              bank: Path | None = None):
    """The Gradio Blocks app. `studio` enables Generate and the ego editor; `dataset` opens a generated
    dataset for review (by default an `experiment`'s own generated images); an experiment with doses adds its
    dose-response panel; `bank` (a `roadsynth cutouts` folder) adds the cut-out review grid."""
    if dataset is None and experiment is not None and (Path(experiment) / "generated" / "annotations.json").is_file():
        dataset = Path(experiment) / "generated"
    if studio is None and dataset is None and bank is None:
        raise ValueError("the UI needs a config (to generate), a generated dataset folder or an experiment folder "
                         "with generated images (to review), or a cut-out bank (to review)")
    gr = _gradio()
    reviews: dict[str, Review] = {}
    if dataset is not None:
        reviews["current"] = Review(Path(dataset), studio.scene_roots if studio is not None else ())
    runs = list_runs(experiment) if experiment is not None else []
    detector = None  # the experiment's own detector section: it loads the runs' weights
    if experiment is not None:
        from roadsynth.config import DetectorConfig, load_config

        cfg_path = Path(experiment) / "config.yaml"
        cfg = load_config(cfg_path) if cfg_path.exists() else None
        detector = cfg.experiment.detector if cfg is not None and cfg.experiment is not None else DetectorConfig()

    def current() -> Review | None:
        return reviews.get("current")

    def view(index: int, mode: str, run_label: str | None):
        r = current()
        if r is None or len(r) == 0:
            return None, None, None, "no samples yet: press Generate", [], gr.update(choices=[], value=None), 0
        index = int(np.clip(index, 0, len(r) - 1))
        sample = r.render(index, mode)
        original = r.original(index)
        det = None
        run = next((x for x in runs if x["label"] == run_label), None)
        if run is not None:
            det = detect(detector, Path(run["weights"]), r.image(index))
        rows = r.objects(index)
        cols = [c for c in OBJECT_COLUMNS if c not in DETECTOR_COLUMNS or any(row[c] is not None for row in rows)]
        table = pd.DataFrame([[str(row[c]) if isinstance(row[c], list) else row[c] for c in cols] for row in rows],
                             columns=cols)
        choices = [f"#{row['id']} {row['category']}" for row in rows]
        im = r.dataset.images[index]
        label = (f"sample {index + 1} / {len(r)}: `{im.file_name}` from `{im.attributes.get('background', '?')}`, "
                 f"{len(rows)} generated objects, {sum(row['status'] == 'rejected' for row in rows)} rejected")
        dropped = im.attributes.get("rejected", [])
        if dropped:  # objects the placement or the verifier refused: say why, not just how many
            label += "; not inserted: " + "; ".join(f"{d['category']}: {d['reason']}" for d in dropped[:4])
        return (original, sample, det, label, table, gr.update(choices=choices, value=choices[0] if choices else None),
                index)

    def generate(frame_label: str, n: int, method: str, prompt: str, strength: float, mode: str, run_label: str | None):
        if studio is None:
            raise gr.Error("start the UI with a config (`roadsynth ui --config ...`) to generate samples")
        try:
            frame_index = int(frame_label.split(":", 1)[0])
            reviews["current"] = studio.generate(frame_index, int(n), method, prompt or "", float(strength))
        except ValueError as e:
            raise gr.Error(str(e)) from None
        return view(len(reviews["current"]) - 1, mode, run_label)

    def decide(index: int, choice: str | None, accept: bool, mode: str, run_label: str | None):
        r = current()
        if r is None or not choice:
            raise gr.Error("pick a generated object first")
        path = r.decide(int(choice.split()[0].lstrip("#")), accept)
        out = view(index, mode, run_label)
        return (*out[:3], out[3] + f" — curated file: `{path}`", *out[4:])

    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts
    with gr.Blocks(title="roadsynth") as app:
        index = gr.State(0)
        gr.Markdown("## roadsynth: generate, compare and curate synthetic road data")
        with gr.Row(visible=studio is not None or dataset is not None):
            with gr.Column(scale=1, min_width=260):
                frames = studio.frame_labels() if studio else []
                frame = gr.Dropdown(frames, value=frames[0] if frames else None, label="Scene frame",
                                    elem_id="frame", visible=studio is not None)
                n = gr.Slider(1, 8, value=2, step=1, label="Generated objects", elem_id="n-objects",
                              visible=studio is not None)
                method = gr.Radio(METHODS, value="Paste", label="Method", elem_id="method", visible=studio is not None)
                prompt = gr.Textbox(label="Prompt (inpainting)", placeholder="a deer standing on the road, photo",
                                    elem_id="prompt", visible=studio is not None)
                strength = gr.Slider(0.0, 1.0, value=0.7, step=0.05, label="Edit strength", elem_id="strength",
                                     visible=studio is not None)
                go = gr.Button("Generate", variant="primary", elem_id="generate", visible=studio is not None)
                boxes = gr.Radio(BOX_MODES, value="Generated", label="Show boxes", elem_id="boxes")
                run = gr.Dropdown([x["label"] for x in runs], value=None, label="Detector (experiment run)",
                                  elem_id="run", visible=bool(runs))
            with gr.Column(scale=3):
                with gr.Row():
                    original = gr.Image(label="Original", elem_id="original", interactive=False, format="png")
                    sample = gr.Image(label="Sample", elem_id="sample", interactive=False, format="png")
                    detections = gr.Image(label="Detections", elem_id="detections", interactive=False, format="png",
                                          visible=bool(runs))
                with gr.Row():
                    prev = gr.Button("◀ Previous", elem_id="prev")
                    status = gr.Markdown(elem_id="status")
                    nxt = gr.Button("Next ▶", elem_id="next")
                objects = gr.Dataframe(headers=[c for c in OBJECT_COLUMNS if c not in DETECTOR_COLUMNS], label="Generated objects: provenance and verifier scores",
                                       elem_id="objects", interactive=False, wrap=True)
                with gr.Row():
                    obj = gr.Dropdown([], label="Object", elem_id="object")
                    accept = gr.Button("Accept", elem_id="accept")
                    reject = gr.Button("Reject", elem_id="reject", variant="stop")

        curve = DoseCurve(Path(experiment)) if experiment is not None else None
        if curve:
            doses = curve.doses
            with gr.Accordion("Dose-response: AP against the amount of generated data", open=True, elem_id="dose-panel"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=260):
                        dose_method = gr.Radio(curve.methods, value=curve.methods[0], label="Method",
                                               elem_id="dose-method")
                        dose = gr.Slider(0, len(doses) - 1, value=len(doses) - 1, step=1, elem_id="dose",
                                         label=f"Dose (position among {', '.join(map(str, doses))} generated images)")
                        dose_text = gr.Markdown(elem_id="dose-summary")
                    with gr.Column(scale=3):
                        dose_plot = gr.Image(label="Curve", elem_id="dose-curve", interactive=False, format="png")
                        dose_examples = gr.Gallery(label="Images this dose adds", elem_id="dose-examples", columns=4)

            def show_dose(method: str, k: float):
                d = doses[int(np.clip(int(k), 0, len(doses) - 1))]
                return curve.figure(method, d), curve.examples(method, d), curve.summary(method, d)

            dose_outputs = [dose_plot, dose_examples, dose_text]
            dose_method.change(show_dose, [dose_method, dose], dose_outputs)
            dose.change(show_dose, [dose_method, dose], dose_outputs)
            app.load(show_dose, [dose_method, dose], dose_outputs)

        if bank is not None:
            bank_panel(gr, app, BankReview(Path(bank)))
        if studio is not None and studio.config_path is not None:
            ego_panel(gr, app, studio)

        outputs = [original, sample, detections, status, objects, obj, index]
        go.click(generate, [frame, n, method, prompt, strength, boxes, run], outputs)
        boxes.change(view, [index, boxes, run], outputs)
        run.change(view, [index, boxes, run], outputs)
        prev.click(lambda i, m, r: view(i - 1, m, r), [index, boxes, run], outputs)
        nxt.click(lambda i, m, r: view(i + 1, m, r), [index, boxes, run], outputs)
        accept.click(lambda i, c, m, r: decide(i, c, True, m, r), [index, obj, boxes, run], outputs)
        reject.click(lambda i, c, m, r: decide(i, c, False, m, r), [index, obj, boxes, run], outputs)
        app.load(view, [index, boxes, run], outputs)
    app._roadsynth_theme = theme
    return app


def selected(gr, fn) -> None:
    """Gradio passes the event to a parameter annotated `gr.SelectData`; with postponed annotations (and
    Gradio imported lazily) the annotation is only the string, so give it the class itself."""
    fn.__annotations__["evt"] = gr.SelectData


def bank_panel(gr, app, br: BankReview) -> None:
    """The bank's cut-outs as a grid on grey, sortable by score; accept or reject the picked one."""
    with gr.Accordion("Cut-out bank: review", open=True, elem_id="bank-panel"):
        with gr.Row():
            sort = gr.Radio(list(SORTS), value=SORTS[0], label="Sort", elem_id="bank-sort")
            category = gr.Dropdown(["all", *br.bank.categories], value="all", label="Class", elem_id="bank-class")
        summary = gr.Markdown(elem_id="bank-summary")
        grid = gr.Gallery(label="Cut-outs on grey: class · mask quality · status · id", columns=8, allow_preview=False,
                          object_fit="contain", format="png", elem_id="bank-grid")
        with gr.Row():
            picked = gr.Markdown("pick a cut-out in the grid", elem_id="bank-picked")
            accept = gr.Button("Accept", elem_id="bank-accept")
            reject = gr.Button("Reject", elem_id="bank-reject", variant="stop")
            forget = gr.Button("Undecide", elem_id="bank-undecide")
    shown, chosen = gr.State([]), gr.State(None)

    def items(order: str, cat: str):
        ids = br.ids(order, cat)
        return [(br.thumbnail(i), br.caption(i)) for i in ids], ids, br.summary()

    def pick(ids: list[str], evt: gr.SelectData):
        return ids[evt.index], f"**{br.caption(ids[evt.index])}**"

    selected(gr, pick)

    def decide(cutout_id: str | None, decision: str | None, order: str, cat: str):
        if cutout_id is None:
            raise gr.Error("pick a cut-out in the grid first")
        br.decide(cutout_id, decision)
        return (*items(order, cat), f"**{br.caption(cutout_id)}**")

    listing = [grid, shown, summary]
    for widget in (sort, category):
        widget.change(items, [sort, category], listing)
    grid.select(pick, [shown], [chosen, picked])
    for button, decision in ((accept, "accept"), (reject, "reject"), (forget, None)):
        button.click(lambda c, o, k, d=decision: decide(c, d, o, k), [chosen, sort, category], [*listing, picked])
    app.load(items, [sort, category], listing)


def ego_panel(gr, app, studio: Studio) -> None:
    """Outline the ego vehicle on a frame, point by point, and save it as its scene source's `ego` polygon."""
    frames = studio.frame_labels()
    with gr.Accordion("Ego vehicle: outline the bonnet or dashboard", open=False, elem_id="ego-panel"):
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                frame = gr.Dropdown(frames, value=frames[0] if frames else None, label="Scene frame", elem_id="ego-frame")
                text = gr.Markdown("Click the outline of the car's visible parts (bonnet, dashboard, mirror) on the "
                                   "frame, point by point. Shaded: the source's ego mask as configured now.",
                                   elem_id="ego-status")
                undo = gr.Button("Undo point", elem_id="ego-undo")
                clear = gr.Button("Clear", elem_id="ego-clear")
                save = gr.Button("Save as this source's ego polygon", variant="primary", elem_id="ego-save")
            with gr.Column(scale=3):
                image = gr.Image(label="Frame", interactive=False, format="png", elem_id="ego-image")
    points = gr.State([])

    def show(label: str, pts: list, note: str = ""):
        k = int(label.split(":", 1)[0])
        return studio.ego_view(k, pts), pts, note or f"{len(pts)} points"

    def add(label: str, pts: list, evt: gr.SelectData):  # evt.index: the click in the image's own pixels
        return show(label, [*pts, [float(evt.index[0]), float(evt.index[1])]])

    selected(gr, add)

    def store(label: str, pts: list):
        try:
            path = studio.save_ego(int(label.split(":", 1)[0]), [tuple(p) for p in pts])
        except ValueError as e:
            raise gr.Error(str(e)) from None
        return show(label, [], f"Saved to `{path}`; samples generated here use it from now on, and so does "
                               f"`roadsynth generate {path} --out ...`")

    outputs = [image, points, text]
    frame.change(lambda f: show(f, []), [frame], outputs)
    image.select(add, [frame, points], outputs)
    undo.click(lambda f, p: show(f, p[:-1]), [frame, points], outputs)
    clear.click(lambda f: show(f, []), [frame], outputs)
    save.click(store, [frame, points], outputs)
    app.load(lambda f: show(f, []), [frame], outputs)


def launch(app: Any, host: str = "127.0.0.1", port: int | None = None, *, block: bool = True):
    """Serve the app; returns (app, local_url) when `block` is False (tests drive it from a browser)."""
    if block and threading.current_thread() is threading.main_thread():
        # `kill` (SIGTERM) skips atexit: turn it into a normal exit so the private temp folder is removed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                               theme=app._roadsynth_theme, footer_links=[], allowed_paths=[], show_error=True)
    finally:
        if block:  # the server has stopped: its rendered images go with it
            remove_temp_dir()
    return app, url
