"""Opens the `damda eval` HTML report in headless Chromium: the page is self-contained, shows the
summary with intervals, one chart per gated metric, and a per-question table that sorts.

Environment:
  DAMDA_REPORT     the report file (scripts/eval-gate.sh writes .build/artifacts/eval.html)
  DAMDA_ARTIFACTS  directory for the screenshot (default .build/artifacts)

Run: python3 -m unittest -v Tests/server/test_report.py
"""

import os
import pathlib
import re
import unittest

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

REPORT = os.environ.get("DAMDA_REPORT", ".build/artifacts/eval.html")
ARTIFACTS = os.environ.get("DAMDA_ARTIFACTS", ".build/artifacts")
CHROMIUM = os.environ.get("DAMDA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DAMDA_CHROMEDRIVER", "/usr/bin/chromedriver")


class TestEvalReport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2200", "--lang=ko-KR"):
            opts.add_argument(arg)
        cls.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
        cls.driver.get(pathlib.Path(REPORT).resolve().as_uri())

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    def test_self_contained(self):
        html = pathlib.Path(REPORT).read_text(encoding="utf-8")
        self.assertIsNone(re.search(r'(src|href)="https?://', html), "the report must load nothing from the network")

    def test_summary_charts_and_sorting(self):
        d = self.driver
        header = [th.text for th in d.find_elements(By.CSS_SELECTOR, "#summary tr:first-child th")]
        self.assertEqual(header, ["metric", "base", "rag", "peft", "peft+rag"])
        cells = d.find_elements(By.CSS_SELECTOR, "#summary td.num .ci")
        self.assertTrue(cells and all(re.match(r"\[[-\d.]+, [-\d.]+\] n=\d+", c.text) for c in cells), "every value has its interval")
        self.assertGreaterEqual(len(d.find_elements(By.CSS_SELECTOR, ".chart svg")), 8)
        rows = d.find_elements(By.CSS_SELECTOR, "#questions tbody tr")
        self.assertEqual(len(rows), 18, "12 answerable + 3 hidden + 3 off-domain")
        # Sort by peft+rag F1 (the column after its name), descending after two clicks.
        headers = d.find_elements(By.CSS_SELECTOR, "#questions thead th")
        f1 = next(i for i, h in enumerate(headers) if h.text == "peft+rag F1")
        headers[f1].click()
        headers[f1].click()
        values = [float(r.find_elements(By.TAG_NAME, "td")[f1].text) for r in d.find_elements(By.CSS_SELECTOR, "#questions tbody tr")]
        self.assertEqual(values, sorted(values, reverse=True))
        os.makedirs(ARTIFACTS, exist_ok=True)
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(os.path.join(ARTIFACTS, "eval-report.png"))


if __name__ == "__main__":
    unittest.main()
