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

        # Toggle the box display: the drawn sample changes, and comes back.
        with_boxes = sample_src()
        page.get_by_label("None", exact=True).check()
        page.wait_for_function("s => (e => !!e && e.src !== s)(document.querySelector('#sample img'))", arg=with_boxes)
        without = sample_src()
        page.get_by_label("Generated", exact=True).check()
        page.wait_for_function("s => (e => !!e && e.src !== s)(document.querySelector('#sample img'))", arg=without)

        # Step through the gallery.
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
    drawn = detect(weights, data / "images" / "img1.png", {3: "square", 7: "bar"}, rgb, imgsz=64, min_score=0.0)
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
