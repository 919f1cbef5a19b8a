"""compat.html in a real headless browser: Debian's chromium driven by Selenium.

Static checks cannot show that the page's script runs under its own
Content-Security-Policy, that a click opens the right cell, or that the
filters hide what they say. These tests do, and leave screenshots in
test-artifacts/ for a person to look at. Selenium talks to the system
chromedriver; Selenium Manager never runs, so nothing is downloaded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from compat.harness import html
from compat.harness.results import CellResult, Failure

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing (apt-get install chromium chromium-driver)")

from selenium import webdriver  # noqa: E402  (after the skip reason, so a missing browser is reported as such)
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EVIL = "TypeError: <script>alert(1)</script><img src=x onerror=\"window.pwned=1\"> | `x` </script>\nsecond line"
CASES = [f"{c}@{t}" for c in ("empty_completion", "single_user_message", "missing_prompt", "unicode_emoji")
         for t in ("chatml", "gemma", "llama2", "zephyr")]
KTO_INIT = "trl.trainer.kto_trainer.KTOTrainer.__init__"


def result(trl: str, tf: str, status: str = "compatible", failure: Failure | None = None, **kw) -> CellResult:
    ok = status == "compatible"
    fields = dict(
        environment={"python": "3.11.7", "torch": "2.13.0+cpu", "trl": trl, "transformers": tf, "accelerate": "1.15.0"},
        keyword={"processing_class": "accepted", "tokenizer": "rejected"} if ok else {"processing_class": "untested", "tokenizer": "untested"},
        keyword_raised_by={"tokenizer": KTO_INIT} if ok else {}, import_path="trl" if status != "unresolvable" else None,
        formatter={} if status == "unresolvable" else {
            "legacy": {c: "pass" if i % 5 == 0 else "error:IndexError" for i, c in enumerate(CASES)},
            "adapter": dict.fromkeys(CASES, "pass")},
        training={"device": "cpu", "dtype": "bfloat16", "autocast": True, "steps": 3, "losses": [0.5, 0.5003, 0.453],
                  "seconds": 0.4, "peak_memory_bytes": 43896832} if ok else None,
        warnings=({"stage": "train", "category": "FutureWarning", "message": "torch.cpu.amp.autocast(args...) is deprecated"},),
        seconds=15.2, timings={"resolve": 0.9, "install": 0.7, "suite": 13.6})
    fields.update(kw)
    return CellResult(trl, tf, "latest", status, failure=failure, **fields)


def matrix() -> list[CellResult]:
    """Shaped like the default matrix's real results, plus one cell carrying hostile text."""
    return [
        result("0.11.4", "4.45.2", "incompatible", Failure("import", EVIL, "trl.trainer.utils.<module>"), import_path=None),
        result("0.11.4", "4.46.3", "incompatible", Failure("import", "ModuleNotFoundError: No module named 'rich'",
                                                          "trl.trainer.utils.<module>", drift=True), import_path=None),
        result("0.12.0", "4.45.2", "unresolvable", Failure("resolve", "No solution found when resolving dependencies: "
               "Because trl==0.12.0 depends on transformers>=4.46.0 ...", "uv")),
        result("0.12.0", "4.46.3"),
        result("0.12.2", "4.45.2", "incompatible",
               Failure("construct", "TypeError: Trainer.__init__() got an unexpected keyword argument 'processing_class'",
                       "transformers.trainer.Trainer.__init__"),
               keyword={"processing_class": "rejected", "tokenizer": "rejected"},
               keyword_raised_by={"processing_class": "transformers.trainer.Trainer.__init__",
                                  "tokenizer": "transformers.trainer.Trainer.__init__"}),
        result("0.12.2", "4.46.3", keyword={"processing_class": "accepted", "tokenizer": "accepted"}, keyword_raised_by={}),
        result("0.13.0", "4.46.3", keyword={"processing_class": "accepted", "tokenizer": "deprecated"}, keyword_raised_by={}),
        result("0.14.0", "4.57.6", "incompatible", Failure("train", "TypeError: KTOTrainer._get_train_sampler() takes 1 "
               "positional argument but 2 were given", "trl.trainer.kto_trainer.KTOTrainer._get_train_sampler"),
               keyword={"processing_class": "accepted", "tokenizer": "rejected"}, keyword_raised_by={"tokenizer": KTO_INIT}),
        *(result(t, f, import_path="trl.experimental.kto" if t == "1.0.0" else "trl")
          for t in ("0.23.1", "1.0.0", "1.16.0") for f in ("4.57.6", "5.0.0")),
        result("1.16.0", "5.24.0"),
        result("1.16.0", "4.46.3", "error", Failure("install", "network is unreachable", "uv"), import_path=None, formatter={}),
    ]


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield d
    d.quit()


def load(driver, tmp_path: Path, results: list[CellResult], meta: dict | None = None) -> float:
    page = tmp_path / "compat.html"
    page.write_text(html.render(results, meta or {"profile": "default", "python": "3.11", "torch": "2.13.0",
                                                  "platform": "Linux-x86_64", "generated": "2026-11-28T10:45:27Z"}))
    start = time.perf_counter()
    driver.get(page.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    return time.perf_counter() - start


def cells(driver):
    return driver.find_elements(By.CSS_SELECTOR, "button.cell")


def button(driver, trl: str, tf: str):
    index = next(i for i, c in enumerate(html.page_data(matrix(), {})["cells"]) if (c["trl"], c["transformers"]) == (trl, tf))
    return driver.find_element(By.CSS_SELECTOR, f"button.cell[data-cell='{index}']")


def test_grid_renders_every_cell_and_runs_no_injected_code(driver, tmp_path):
    results = matrix()
    load(driver, tmp_path, results)
    assert len(cells(driver)) == len(results)
    assert "\u2705 processing_class" in button(driver, "0.12.0", "4.46.3").text  # symbol and keyword, not colour alone
    assert button(driver, "0.12.2", "4.45.2").text == "\u274c construct"
    assert driver.execute_script("return window.pwned") is None
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text
    assert driver.execute_script("return document.querySelectorAll('script').length") == 2
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors  # a CSP violation (a hash that no longer matches) would show here
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "compat-grid.png"))


def test_click_opens_the_cells_detail(driver, tmp_path):
    load(driver, tmp_path, matrix())
    button(driver, "0.11.4", "4.45.2").click()
    dialog = driver.find_element(By.ID, "detail")
    WebDriverWait(driver, 5).until(lambda d: dialog.get_attribute("open") is not None)
    text = dialog.text
    assert "TRL 0.11.4 \u00d7 transformers 4.45.2" in text
    assert EVIL.splitlines()[0] in text and "trl.trainer.utils.<module>" in text  # the hostile error, as plain text
    assert not dialog.find_elements(By.TAG_NAME, "img") and driver.execute_script("return window.pwned") is None
    driver.find_element(By.ID, "detail-close").click()
    button(driver, "0.12.2", "4.45.2").click()
    text = dialog.text
    assert "processing_class=" in text and "transformers.trainer.Trainer.__init__" in text and "rejected" in text
    assert "legacy formatter" in text and "4 / 16" in text and "16 / 16" in text  # legacy vs adapter counts
    assert "0.12.2" in text and "1.15.0" in text  # installed versions
    driver.save_screenshot(str(ARTIFACTS / "compat-detail.png"))
    driver.find_element(By.ID, "detail-close").click()
    assert dialog.get_attribute("open") is None


def test_failing_only_filter_hides_compatible_cells(driver, tmp_path):
    results = matrix()
    load(driver, tmp_path, results)
    driver.find_element(By.ID, "failing").click()
    shown = [b for b in cells(driver) if b.is_displayed()]
    assert len(shown) == sum(r.status != "compatible" for r in results)
    assert not any("processing_class" in b.text for b in shown)
    assert not button(driver, "0.23.1", "4.57.6").find_element(By.XPATH, "./ancestor::tr").is_displayed()  # all-green row folds
    driver.find_element(By.ID, "failing").click()
    assert all(b.is_displayed() for b in cells(driver))


def test_probe_relabels_cells(driver, tmp_path):
    load(driver, tmp_path, matrix())
    Select(driver.find_element(By.ID, "probe")).select_by_value("kw:tokenizer")
    assert button(driver, "0.13.0", "4.46.3").text == "\u26a0\ufe0f deprecated"
    assert button(driver, "1.0.0", "5.0.0").text == "\u274c rejected"
    assert "rejected" in driver.find_element(By.ID, "legend").text
    Select(driver.find_element(By.ID, "probe")).select_by_value("fmt:legacy")
    assert button(driver, "1.0.0", "5.0.0").text == "\u274c 4/16"
    Select(driver.find_element(By.ID, "probe")).select_by_value("fmt:adapter")
    assert button(driver, "1.0.0", "5.0.0").text == "\u2705 16/16"
    driver.find_element(By.ID, "failing").click()
    assert not [b for b in cells(driver) if b.is_displayed()]  # the adapter formatter fails nowhere


def test_a_40_by_50_grid_loads_and_keeps_its_headers(driver, tmp_path):
    statuses = ("compatible", "incompatible", "compatible", "unresolvable")
    big = [result(f"0.{i}.0", f"4.{j}.0", statuses[(i + j) % 4],
                  None if (i + j) % 2 == 0 else Failure("construct", f"TypeError: {i},{j}", "x.Y.__init__"))
           for i in range(40) for j in range(50)]
    seconds = load(driver, tmp_path, big)
    assert len(cells(driver)) == 2000 and seconds < 15
    pane = driver.find_element(By.CSS_SELECTOR, ".scroll")
    driver.execute_script("arguments[0].scrollTop = 600; arguments[0].scrollLeft = 2000;", pane)
    head = driver.find_element(By.CSS_SELECTOR, "table.grid thead th:nth-child(5)")
    row = driver.find_element(By.CSS_SELECTOR, "table.grid tbody tr:nth-child(30) th")
    top = lambda e: driver.execute_script("return arguments[0].getBoundingClientRect()", e)  # noqa: E731
    assert abs(top(head)["top"] - top(pane)["top"]) < 3  # column headers stick to the top
    assert abs(top(row)["left"] - top(pane)["left"]) < 3  # row headers stick to the left
    driver.save_screenshot(str(ARTIFACTS / "compat-grid-40x50.png"))
