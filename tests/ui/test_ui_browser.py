"""End to end in a real browser: headless Chromium (Debian's chromium + chromium-driver, which
`make test` installs) drives the page on a tiny ShapesWorld-style pipeline: it generates, moves a
reward slider, generates again and sees the image change, and gets a message for an empty
prompt. Screenshots go to test-artifacts/ui/ (REWARDFLOW_TEST_ARTIFACTS overrides)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rewardflow.ui import Studio, serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver

    if not (os.path.exists(CHROMIUM) and DRIVER):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver: `make test` installs them")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    yield driver
    driver.quit()


@pytest.fixture
def page(pipe, browser):
    from rewardflow.commands.ui import scorers

    studio = Studio(pipe, "runs/tiny", scorers=scorers("auto", pipe.reward_keys, "cpu"))
    srv = serve(studio, "127.0.0.1", 0)
    browser.get(f"http://127.0.0.1:{srv.server_address[1]}/")
    wait(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1")
    yield browser
    srv.shutdown()


def wait(driver, cond, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(cond)


def generate(driver, count: int) -> str:
    driver.find_element("id", "generate").click()
    wait(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-generations") == str(count))
    return driver.find_element("css selector", "#gallery img").get_attribute("src")


def test_slider_changes_the_image_and_scores_appear(page, tmp_path):
    from selenium.webdriver.common.keys import Keys

    artifacts = Path(os.environ.get("REWARDFLOW_TEST_ARTIFACTS", ROOT / "test-artifacts" / "ui"))
    artifacts.mkdir(parents=True, exist_ok=True)
    page.find_element("id", "prompt").send_keys("a red circle left of a blue square")
    steps = page.find_element("id", "steps")
    steps.clear()
    steps.send_keys("4")
    first = generate(page, 1)
    assert first.startswith("data:image/png;base64,")
    scores = page.find_element("css selector", "#gallery table.scores").text
    assert "sharpness" in scores and "colorfulness" in scores
    assert "rewardflow sample --model runs/tiny" in page.find_element("id", "command").text
    page.save_screenshot(str(artifacts / "before.png"))
    slider = page.find_element("id", "slider-pos-sharpness")
    slider.click()
    slider.send_keys(Keys.HOME)  # s+ of sharpness from 1 down to 0, as a person drags it
    assert page.find_element("id", "slider-pos-sharpness").get_attribute("value") == "0"
    second = generate(page, 2)
    assert second != first, "moving the sharpness slider must change the image"
    page.save_screenshot(str(artifacts / "after.png"))


def test_bad_input_shows_a_message(page):
    page.find_element("id", "prompt").clear()
    page.find_element("id", "generate").click()
    wait(page, lambda d: "prompt is empty" in d.find_element("id", "error").text)
    assert not page.find_elements("css selector", "#gallery img")


def test_isolate_holds_the_others_at_their_own_sliders(page):
    """Isolate with "their own s+ sliders": the other rewards are held, in both branches, at
    the level each one's s+ slider shows (here colourfulness moved to 0 with the keyboard)."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    page.find_element("id", "prompt").send_keys("a red circle")
    steps = page.find_element("id", "steps")
    steps.clear()
    steps.send_keys("2")
    Select(page.find_element("id", "mode")).select_by_value("isolate")
    Select(page.find_element("id", "isolate")).select_by_visible_text("sharpness")
    assert page.find_element("id", "levelbox").is_displayed()
    Select(page.find_element("id", "anchor_from")).select_by_value("sliders")
    assert not page.find_element("id", "levelbox").is_displayed()
    slider = page.find_element("id", "slider-pos-colorfulness")
    slider.click()
    slider.send_keys(Keys.HOME)
    generate(page, 1)
    python = page.find_element("id", "python").text
    assert "reward_targets={'sharpness': 1.0, 'colorfulness': 0.0}" in python, python
    assert "negative_reward_targets={'sharpness': 0.0, 'colorfulness': 0.0}" in python, python
    assert "--anchor colorfulness=0" in page.find_element("id", "command").text
