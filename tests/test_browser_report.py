"""The report in MLflow's UI, in a real browser (Debian's chromium, driven by Selenium).

An ``mlflow server`` with a sqlite store runs on 127.0.0.1; an audit of images with copies is
logged over HTTP; the run's artifact page for ``leakguard/report.html`` is opened in headless
Chromium. The report must show the verdict, the counts and the pair pictures inside MLflow's
artifact pane (about 600 px wide) and in a full browser tab. Screenshots are kept in the test's
temporary folder and copied to $LEAKGUARD_SCREENSHOT_DIR when that is set.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import leakguard as lg

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                       reason=f"needs Debian's chromium ({CHROMIUM}) and chromium-driver ({CHROMEDRIVER})"),
]
pytest.importorskip("selenium")
pytest.importorskip("mlflow")


def picture_images(n: int, seed: int = 0) -> np.ndarray:
    """Small RGB pictures people can tell apart: a gradient and a few coloured discs each."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = np.linspace(0, 255, 48, dtype=np.uint8)
        img = Image.fromarray(np.dstack([np.tile(base, (48, 1)), np.tile(base[:, None], (1, 48)),
                                         np.full((48, 48), rng.integers(0, 256), np.uint8)]))
        draw = ImageDraw.Draw(img)
        for _ in range(3):
            x, y, r = rng.integers(4, 44), rng.integers(4, 44), rng.integers(3, 10)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        out.append(np.asarray(img))
    return np.stack(out)


def chrome(width: int, height: int = 1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_for(driver, find, timeout=90.0):
    """Poll ``find(driver)`` until it returns something truthy (the MLflow UI loads lazily)."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            found = find(driver)
            if found:
                return found
        except WebDriverException as err:
            last = err
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting in {driver.current_url}: {last}")


def keep_screenshot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    driver.save_screenshot(str(path))
    target = os.environ.get("LEAKGUARD_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / name)
    return path


def check_report_view(driver, expected_leaked: int):
    """Inside the report document: verdict, leaked count and a pair picture are visible."""
    from selenium.webdriver.common.by import By

    verdict = wait_for(driver, lambda d: d.find_element(By.ID, "verdict"))
    assert verdict.is_displayed() and verdict.text.strip().lower() == "fail"
    counts = [e for e in driver.find_elements(By.CSS_SELECTOR, ".split .leaked-count") if e.is_displayed()]
    assert [c.text for c in counts] == [str(expected_leaked)]
    thumbs = [t for t in driver.find_elements(By.CSS_SELECTOR, ".pair img.thumb") if t.is_displayed()]
    assert len(thumbs) >= 2
    first = thumbs[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", first)
    loaded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", first)
    assert loaded and loaded > 0, "pair picture did not load"
    assert first.size["width"] >= 40, f"pair picture too small to see: {first.size}"
    page_width = driver.execute_script("return document.documentElement.clientWidth")
    overflow = driver.execute_script("return document.documentElement.scrollWidth")
    assert overflow <= page_width + 2, f"the report scrolls sideways ({overflow} > {page_width} px)"
    if page_width >= 460:  # from MLflow's artifact pane up, pairs sit side by side
        tops = [p.location["y"] for p in driver.find_elements(By.CSS_SELECTOR, ".pair")[:2]]
        assert len(tops) == 2 and tops[0] == tops[1], f"one pair per row at {page_width} px"
    driver.execute_script("window.scrollTo(0, 0);")  # the screenshot shows the verdict
    return page_width


def test_report_in_mlflow_artifact_view_and_full_tab(tmp_path):
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    from _mlflow_server import MlflowServer

    pictures = picture_images(40)
    train, val = pictures[:30], np.concatenate([pictures[30:], pictures[:5]])  # 5 copies
    report = lg.audit({"train": train, "val": val}, modality="image", checks=["exact_duplicate"],
                      config=lg.AuditConfig(progress=False))
    assert len(report.leaked("val")) == 5

    with MlflowServer(f"sqlite:///{tmp_path / 'ui.db'}", tmp_path / "artifacts", tmp_path / "server.log") as server:
        client = MlflowClient(tracking_uri=server.uri)
        exp = client.create_experiment("browser")
        run_id = client.create_run(exp, run_name="leaky-images").info.run_id
        assert report.log_to_mlflow(run_id=run_id, client=client, save_dir=tmp_path / "saved")["uploaded"]

        url = f"{server.uri}/#/experiments/{exp}/runs/{run_id}/artifacts/leakguard/report.html"
        driver = chrome(1280, 1000)
        try:
            driver.get(url)
            frame = wait_for(driver, lambda d: [f for f in d.find_elements(By.TAG_NAME, "iframe")
                                                if f.is_displayed() and f.size["width"] > 200])[0]
            pane_width = frame.size["width"]
            assert 350 <= pane_width <= 900, f"artifact pane is {pane_width} px wide"
            driver.switch_to.frame(frame)
            inner = check_report_view(driver, expected_leaked=5)
            assert inner <= pane_width
            driver.switch_to.default_content()
            keep_screenshot(driver, tmp_path, "browser-report.png")
        finally:
            driver.quit()

        # the report in a full tab, as a user who downloads it sees it
        local = Path(client.download_artifacts(run_id, "leakguard/report.html", str(tmp_path / "dl")))
    for width, name in ((1400, "browser-report-full.png"), (600, "browser-report-600.png")):
        driver = chrome(width, 1000)
        try:
            driver.get(local.resolve().as_uri())
            page = check_report_view(driver, expected_leaked=5)
            assert page > width * 0.8
            if width >= 1000:  # full width: pairs sit side by side, not one per row
                tops = {t.location["y"] for t in driver.find_elements(By.CSS_SELECTOR, ".pair")[:3]}
                assert len(tops) < 3
            keep_screenshot(driver, tmp_path, name)
        finally:
            driver.quit()
