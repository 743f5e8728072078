"""The review/demo UI driven in a real headless browser (Debian Chromium via Playwright) on bundled data.

Chromium is a Debian package (`apt-get install chromium`), installed by `.ci/run`; Playwright never
downloads a browser here. Without Chromium the test is skipped, unless ROADSYNTH_REQUIRE_BROWSER=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("ROADSYNTH_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium not found: `apt-get install chromium` (.ci/run does)")
        pytest.skip("Chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.mark.slow
def test_generate_toggle_browse_and_curate_in_the_browser(tmp_path, browser, network_audit):
    from roadsynth.config import load_config
    from roadsynth.review import Studio
    from roadsynth.ui import build_app, launch

    studio = Studio(load_config(ROOT / "configs" / "animals.yaml"), tmp_path / "session")
    app, url = launch(build_app(studio=studio), port=_free_port(), block=False)
    assert url.startswith("http://127.0.0.1:")  # localhost by default
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        status = page.locator("#status")

        def wait_status(text: str) -> str:
            page.wait_for_function("t => document.querySelector('#status')?.innerText.includes(t)", arg=text,
                                   timeout=60_000)
            return status.inner_text()

        def sample_src() -> str:
            return page.locator("#sample img").get_attribute("src")

        def choose_frame(index: int) -> None:
            page.locator("#frame input").click()
            page.get_by_role("option", name=re.compile(rf"^{index}: camvid")).click()

        # Generate with the paste method: 3 objects into frame 10 (daylight), then a second sample from frame 0
        # (dusk, where the verifier may drop objects that matching left too close to the road's grey).
        page.get_by_label("Paste").check()
        page.locator("#n-objects input[type=number]").fill("3")
        page.locator("#n-objects input[type=number]").press("Enter")
        choose_frame(10)
        page.click("#generate")
        first = wait_status("sample 1 / 1")
        choose_frame(0)
        page.click("#generate")
        wait_status("sample 2 / 2")
        session = json.loads((tmp_path / "session" / "annotations.json").read_text())
        assert len(session["images"]) == 2
        generated = [a for a in session["annotations"] if "provenance" in a]
        assert generated and all(a["provenance"]["method"] == "paste" for a in generated)
        first_id = session["images"][0]["id"]
        assert any(a["image_id"] == first_id for a in generated), "sample 1 needs a generated object to review"

        # Toggle the box display on sample 1 (it has generated objects; the dusk frame's may all be refused,
        # and a sample drawn without boxes is the same picture either way): the drawn sample changes, and comes back.
        page.click("#prev")
        wait_status("sample 1 / 2")
        with_boxes = sample_src()
        page.get_by_label("None", exact=True).check()
        page.wait_for_function("s => (e => !!e && e.src !== s)(document.querySelector('#sample img'))", arg=with_boxes)
        without = sample_src()
        page.get_by_label("Generated", exact=True).check()
        page.wait_for_function("s => (e => !!e && e.src !== s)(document.querySelector('#sample img'))", arg=without)

        # Step through the gallery (from sample 1, where the toggle left it).
        page.click("#next")
        wait_status("sample 2 / 2")
        page.click("#prev")
        assert wait_status("sample 1 / 2").split(",")[0] == first.split(",")[0].replace("1 / 1", "1 / 2")
        page.click("#next")
        wait_status("sample 2 / 2")
        page.click("#prev")
        wait_status("sample 1 / 2")

        # Reject the first generated object of sample 1 and see the curated file change.
        chosen = page.locator("#object input").input_value()
        object_id = int(chosen.split()[0].lstrip("#"))
        page.click("#reject")
        wait_status("1 rejected")
        curated = json.loads((tmp_path / "session" / "curated.json").read_text())
        assert object_id in curated["info"]["rejected_annotation_ids"]
        assert object_id not in {a["id"] for a in curated["annotations"]}
        assert len(curated["annotations"]) == len(session["annotations"]) - 1
        assert "rejected" in page.locator("#objects").inner_text()
        page.click("#accept")
        wait_status("0 rejected")
        curated = json.loads((tmp_path / "session" / "curated.json").read_text())
        assert len(curated["annotations"]) == len(session["annotations"])
        page.wait_for_timeout(2000)  # outputs stay faded for a moment after an event finishes
        page.screenshot(path=str(tmp_path / "ui.png"))
        if os.environ.get("ROADSYNTH_UI_SCREENSHOT"):  # docs: ROADSYNTH_UI_SCREENSHOT=docs/img/ui.png
            from PIL import Image

            Image.open(tmp_path / "ui.png").convert("RGB").save(os.environ["ROADSYNTH_UI_SCREENSHOT"], quality=85)
    finally:
        app.close()
    assert network_audit.events == []


@pytest.mark.slow
def test_detections_view_and_review_of_an_existing_dataset(tmp_path, browser, monkeypatch):
    """A dataset opened for review (no config: Generate hidden) and a trained detector's boxes beside it."""
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "yolo_config"))
    from roadsynth.datasets.coco import write_coco
    from roadsynth.datasets.records import Provenance
    from roadsynth.detectors.base import DatasetSplit
    from roadsynth.detectors.yolo_ultralytics import YoloDetector
    from roadsynth.ui import build_app, launch
    from tests.integration.test_yolo_ultralytics import synthetic_split

    data = tmp_path / "dataset"
    (data / "images").mkdir(parents=True)
    train = synthetic_split(data / "images", range(1, 9), 0)
    exp = tmp_path / "experiment"
    # Inside the experiment folder, where experiments keep their runs: the UI refuses weights outside it.
    weights = YoloDetector("yolo11n.yaml", imgsz=64, epochs=1, batch=4).train(
        DatasetSplit(train, data / "images"), DatasetSplit(train, data / "images"), exp / "runs" / "real_s0", seed=0)
    # The squares play "generated" objects so the review has something to decide on.
    anns = tuple(a if a.category_id != 3 else a.__class__(a.id, a.image_id, a.category_id, a.bbox, a.area, 0, None,
                                                          Provenance("paste", "test", 1), {}) for a in train.annotations)
    write_coco(train.with_(annotations=anns), data / "annotations.json")
    write_coco(train, exp / "splits" / "test.json")
    (exp / "runs" / "real_s0" / "metrics.json").write_text(json.dumps(
        {"arm": "real", "seed": 0, "weights": str(weights.relative_to(exp)), "mAP50_95": 0.01}))

    from roadsynth.datasets.io import load_image
    from roadsynth.review import detect

    rgb = load_image(data / "images" / "img1.png")
    from roadsynth.config import DetectorConfig

    drawn = detect(DetectorConfig(imgsz=64), weights, rgb, min_score=0.0)
    assert drawn.shape == rgb.shape and (drawn != rgb).any()  # an untrained detector still proposes boxes at 0

    app, url = launch(build_app(dataset=data, experiment=exp), port=_free_port(), block=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('sample 1 / 8')", timeout=60_000)
        assert not page.locator("#generate").is_visible()  # no config: review only
        assert page.locator("#detections img").count() == 0
        page.locator("#run input").click()
        page.get_by_role("option", name="real seed 0", exact=False).click()
        page.wait_for_selector("#detections img", timeout=60_000)
        page.click("#next")
        page.wait_for_function("document.querySelector('#status')?.innerText.includes('sample 2 / 8')")
        page.wait_for_selector("#detections img")
    finally:
        app.close()


@pytest.mark.slow
def test_dose_response_panel_moves_along_the_curve(tmp_path, browser):
    """An experiment with doses: the curve, what it says at a dose, and the images that dose adds."""
    from roadsynth.ui import build_app, launch
    from tests.unit.test_experiment_doses import dosed_experiment

    exp = dosed_experiment(tmp_path / "experiment")
    from roadsynth.datasets.coco import write_coco
    from tests.unit.test_experiment_doses import generated

    write_coco(generated(8), exp / "splits" / "test.json")
    app, url = launch(build_app(experiment=exp), port=_free_port(), block=False)  # reviews exp/generated too
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(url)
        page.wait_for_function("document.querySelector('#dose-summary')?.innerText.includes('dose 8')", timeout=60_000)
        page.wait_for_selector("#dose-curve img")
        assert page.locator("#dose-examples img").count() == 4  # dose 8 adds images 5-8 to dose 4
        slider = page.locator("#dose input[type=number]")
        slider.fill("1")
        slider.press("Enter")
        page.wait_for_function("document.querySelector('#dose-summary')?.innerText.includes('dose 2')", timeout=30_000)
        page.wait_for_function("document.querySelectorAll('#dose-examples img').length == 2", timeout=30_000)
        assert "per doubling" in page.locator("#dose-summary").inner_text()
    finally:
        app.close()


@pytest.mark.slow
def test_bank_review_grid_and_ego_editor_in_the_browser(tmp_path, browser, network_audit):
    """Curate a cut-out bank in its grid, and outline a bonnet that the saved config then carries."""
    from roadsynth.config import load_config
    from roadsynth.generators.bank import read_decisions, save_bank
    from roadsynth.generators.cutouts import CutoutBank
    from roadsynth.generators.cutout_sources import from_weizmann
    from roadsynth.review import Studio
    from roadsynth.ui import build_app, launch
    from tests.unit.test_ego_editor import user_config

    bank = tmp_path / "bank"
    save_bank(from_weizmann(ROOT / "data" / "sample" / "cutouts" / "weizmann_horse"), bank, min_quality=0.2)
    n = len(CutoutBank.load(bank, include_refused=True))
    cfg_path = user_config(tmp_path / "cfg")
    studio = Studio(load_config(cfg_path), tmp_path / "session", config_path=cfg_path)
    app, url = launch(build_app(studio=studio, bank=bank), port=_free_port(), block=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto(url)
        page.wait_for_function("n => document.querySelectorAll('#bank-grid img').length == n", arg=n, timeout=60_000)
        assert f"{n} cut-outs" in page.locator("#bank-summary").inner_text()

        def text_has(selector: str, text: str) -> None:
            try:
                page.wait_for_function("([s, t]) => document.querySelector(s)?.innerText.includes(t)",
                                       arg=[selector, text], timeout=30_000)
            except Exception:
                raise AssertionError(f"{selector} never said {text!r}: {page.locator(selector).inner_text()!r}") from None

        # Lowest score first: the first cut-out is one the gate refused. Accept it; reject the best one.
        page.locator("#bank-grid img").first.click()
        text_has("#bank-picked", "refused")
        first = page.locator("#bank-picked").inner_text().split("·")[-1].strip()
        page.click("#bank-accept")
        text_has("#bank-summary", "1 accepted")
        page.locator("#bank-grid img").last.click()
        text_has("#bank-picked", "kept")
        last = page.locator("#bank-picked").inner_text().split("·")[-1].strip()
        page.click("#bank-reject")
        text_has("#bank-summary", "1 rejected")
        assert read_decisions(bank) == {first: "accept", last: "reject"}
        used = {c.id for c in CutoutBank.load(bank).cutouts}  # what a generation from the bank pastes
        assert first in used and last not in used

        # The ego editor: four clicks along the bottom of the 640x480 frame, then save.
        page.get_by_text("Ego vehicle: outline the bonnet or dashboard").click()
        image = page.locator("#ego-image img")
        image.wait_for(timeout=30_000)
        image.scroll_into_view_if_needed()  # mouse clicks land in the viewport only
        box = image.bounding_box()
        for k, (u, v) in enumerate([(0.02, 0.80), (0.98, 0.80), (0.98, 0.98), (0.02, 0.98)], start=1):
            page.mouse.click(box["x"] + u * box["width"], box["y"] + v * box["height"])
            text_has("#ego-status", f"{k} points")
            # A click while the frame is re-rendered lands on Gradio's pending overlay: wait until it is gone.
            page.wait_for_function("""() => { const t = document.querySelector('#ego-image [data-testid=status-tracker]');
                                              const i = document.querySelector('#ego-image img');
                                              return (!t || t.classList.contains('hide')) && i && i.complete; }""")
        page.click("#ego-save")
        text_has("#ego-status", "Saved to")
        ego = load_config(cfg_path.with_name("animals.ego.yaml")).generate.scenes[0].ego
        assert len(ego.polygon) == 4
        xs, ys = [p[0] for p in ego.polygon], [p[1] for p in ego.polygon]
        assert min(xs) < 40 and max(xs) > 600 and 370 < min(ys) < 400 and max(ys) > 460  # frame pixels, not screen
        page.wait_for_timeout(1500)
        page.screenshot(path=str(tmp_path / "ui-bank.png"), full_page=True)
        if os.environ.get("ROADSYNTH_UI_BANK_SCREENSHOT"):  # docs: ROADSYNTH_UI_BANK_SCREENSHOT=docs/img/ui-bank.png
            from PIL import Image

            Image.open(tmp_path / "ui-bank.png").convert("RGB").save(os.environ["ROADSYNTH_UI_BANK_SCREENSHOT"],
                                                                     quality=85)
    finally:
        app.close()
    assert network_audit.events == []
