"""Drives the evaluator web page (`GET /`) of a running `damda serve` in headless Chromium.

Environment:
  DAMDA_URL        base URL of the server, e.g. http://127.0.0.1:18080
  DAMDA_API_KEY    the key the server was started with
  DAMDA_ARTIFACTS  directory for screenshots (default .build/artifacts)

Needs `selenium` (PyPI) and Debian's `chromium` + `chromium-driver`.
Run: python3 -m unittest -v Tests/server/test_web.py
"""

import json
import os
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

DAMDA_URL = os.environ.get("DAMDA_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("DAMDA_API_KEY", "")
ARTIFACTS = os.environ.get("DAMDA_ARTIFACTS", ".build/artifacts")
CHROMIUM = os.environ.get("DAMDA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DAMDA_CHROMEDRIVER", "/usr/bin/chromedriver")
KEY_NAME = "damda.apiKey"  # the page's localStorage key

QUESTION = "입원하면 하루에 보험금을 얼마 받나요?"
PANEL_QUESTIONS = [QUESTION, "보험금 청구에 필요한 서류는 무엇인가요?"]
ANSWER_TIMEOUT = 120


def make_driver():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600",
                "--lang=ko-KR"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never tries to download one (no internet here).
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def export_rows():
    req = urllib.request.Request(DAMDA_URL + "/v1/feedback/export?format=jsonl",
                                 headers={"Authorization": f"Bearer {API_KEY}"} if API_KEY else {})
    with urllib.request.urlopen(req, timeout=60) as resp:
        text = resp.read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def api(method, path, body=None):
    data = json.dumps(body).encode("utf-8") if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if API_KEY:
        headers["Authorization"] = f"Bearer {API_KEY}"
    req = urllib.request.Request(DAMDA_URL + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read().decode("utf-8"))


def batch_answers(path, **extra):
    """Answers to PANEL_QUESTIONS in the layout of a `damda batch` answers file."""
    with open(path, "w", encoding="utf-8") as f:
        for i, q in enumerate(PANEL_QUESTIONS):
            a = api("POST", "/v1/rag/ask", dict({"question": q, "cache": False}, **extra))
            line = {"id": f"w{i}", "question": a["question"], "answer": a["answer"], "refused": a["refused"],
                    "refusal_reason": a.get("refusal_reason"), "unsupported": a.get("unsupported", False),
                    "citations": [{k: c.get(k) for k in ("n", "document_id", "chunk_id", "title", "source", "heading", "page", "used", "text")}
                                  for c in a["citations"]],
                    "prompt_tokens": a["usage"]["prompt_tokens"], "completion_tokens": a["usage"]["completion_tokens"],
                    "finish_reason": a.get("finish_reason"), "answer_id": a["id"], "cache": a.get("cache")}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


class TestWebPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.makedirs(ARTIFACTS, exist_ok=True)
        cls.driver = make_driver()
        cls.driver.set_page_load_timeout(60)

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    def tearDown(self):
        logs = self.browser_logs()
        if logs:
            print("\nbrowser console:")
            for entry in logs:
                print(f"  [{entry.get('level')}] {entry.get('message')}")
        script_errors = [e for e in logs if e.get("level") == "SEVERE"
                         and ("Uncaught" in e.get("message", "") or "SyntaxError" in e.get("message", ""))]
        self.assertFalse(script_errors, script_errors)

    def browser_logs(self):
        try:
            return self.driver.get_log("browser")
        except Exception:  # noqa: BLE001 - logs are diagnostics only
            return []

    def open_page(self, key):
        d = self.driver
        d.get(DAMDA_URL + "/")
        if key:
            d.execute_script("localStorage.setItem(arguments[0], arguments[1]);", KEY_NAME, key)
        else:
            d.execute_script("localStorage.removeItem(arguments[0]);", KEY_NAME)
        d.refresh()
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "question").is_displayed())
        self.assertIn("담다", d.title)

    def ask(self, question):
        d = self.driver
        box = d.find_element(By.ID, "question")
        box.clear()
        box.send_keys(question)
        d.find_element(By.ID, "ask").click()

    def wait_for_answer(self, name):
        d = self.driver
        try:
            WebDriverWait(d, ANSWER_TIMEOUT, poll_frequency=0.5).until(
                lambda d: d.execute_script("return document.body.dataset.state") in ("answered", "error"))
        except TimeoutException:
            d.save_screenshot(os.path.join(ARTIFACTS, name + "-timeout.png"))
            self.fail(f"no answer within {ANSWER_TIMEOUT} s; #answer = {d.find_element(By.ID, 'answer').text!r}")
        state = d.execute_script("return document.body.dataset.state")
        if state != "answered":
            d.save_screenshot(os.path.join(ARTIFACTS, name + "-error.png"))
            self.fail(f"page shows an error: {d.find_element(By.ID, 'error').text!r}")

    def test_a_ask_and_feedback(self):
        d = self.driver
        self.open_page(API_KEY)
        self.ask(QUESTION)
        self.wait_for_answer("web-answer")

        sources = d.find_elements(By.CSS_SELECTOR, "#sources .source")
        self.assertGreaterEqual(len(sources), 1)
        best = d.find_elements(By.CSS_SELECTOR, "#sources .source .best-sentence")
        self.assertGreaterEqual(len(best), 1)
        self.assertTrue(best[0].text.strip(), "empty best sentence")
        self.assertFalse(d.find_element(By.ID, "error").is_displayed())
        self.assertTrue(d.find_element(By.ID, "thumbs-up").is_displayed())

        # Expanding a source shows the whole chunk with the best sentence highlighted.
        sources[0].find_element(By.TAG_NAME, "summary").click()
        marks = sources[0].find_elements(By.TAG_NAME, "mark")
        if marks:
            self.assertEqual(marks[0].text.strip(), best[0].text.strip())
        d.save_screenshot(os.path.join(ARTIFACTS, "web-answer.png"))

        d.find_element(By.ID, "thumbs-up").click()
        WebDriverWait(d, 30).until(lambda d: d.execute_script("return document.body.dataset.feedback") == "saved")
        status = d.find_element(By.ID, "feedback-status").text
        self.assertIn("평가가 저장되었습니다", status)
        d.save_screenshot(os.path.join(ARTIFACTS, "web-page.png"))

        rows = export_rows()
        self.assertTrue(any(r.get("rating") == "up" and r.get("question") == QUESTION for r in rows),
                        rows[-5:])
        fid = status.split("#")[-1].rstrip(")").strip()
        if fid.isdigit():
            self.assertIn(int(fid), [r.get("id") for r in rows])

    def test_a2_correction_after_thumbs_down(self):
        d = self.driver
        self.open_page(API_KEY)
        self.ask(QUESTION)
        self.wait_for_answer("web-correction-answer")
        correction = d.find_element(By.ID, "correction")
        self.assertFalse(correction.is_displayed(), "the correction box waits for a down rating")
        d.find_element(By.ID, "thumbs-down").click()
        WebDriverWait(d, 30).until(lambda d: d.execute_script("return document.body.dataset.feedback") == "saved")
        self.assertTrue(correction.is_displayed())
        d.execute_script("delete document.body.dataset.feedback")
        correction.send_keys("입원 1일당 5만원")
        d.find_element(By.ID, "send-feedback").click()
        WebDriverWait(d, 30).until(lambda d: d.execute_script("return document.body.dataset.feedback") == "saved")
        d.save_screenshot(os.path.join(ARTIFACTS, "web-correction.png"))
        rows = export_rows()
        self.assertTrue(any(r.get("rating") == "down" and r.get("correction") == "입원 1일당 5만원" and r.get("question") == QUESTION
                            for r in rows), rows[-3:])

    def open_panel_admin(self):
        """The panel page's admin tab, with the API key stored as the page keeps it."""
        d = self.driver
        d.get(DAMDA_URL + "/panel")
        if API_KEY:
            d.execute_script("localStorage.setItem(arguments[0], arguments[1]);", KEY_NAME, API_KEY)
        d.get(DAMDA_URL + "/panel#admin")
        d.refresh()
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "admin-view").is_displayed())

    def test_a3_blind_ab_panel(self):
        """The administrator uploads two configurations' answer files, an evaluator rates both items
        blind, and the results page shows the win rate and the mean ratings."""
        d = self.driver
        full, short = os.path.abspath(os.path.join(ARTIFACTS, "panel-full.jsonl")), os.path.abspath(os.path.join(ARTIFACTS, "panel-short.jsonl"))
        batch_answers(full)
        batch_answers(short, max_tokens=1)
        self.open_panel_admin()
        d.find_element(By.ID, "new-name").send_keys("웹 A/B 설문")
        names = d.find_elements(By.CSS_SELECTOR, ".config-name")
        files = d.find_elements(By.CSS_SELECTOR, ".config-file")
        names[0].send_keys("full"); files[0].send_keys(full)
        names[1].send_keys("one-token"); files[1].send_keys(short)
        d.find_element(By.ID, "create").click()
        WebDriverWait(d, 30).until(lambda d: "만들었습니다" in d.find_element(By.ID, "create-status").text)
        d.save_screenshot(os.path.join(ARTIFACTS, "panel-admin-created.png"))

        d.find_element(By.ID, "tab-eval").click()
        d.find_element(By.ID, "evaluator").clear()
        d.find_element(By.ID, "evaluator").send_keys("웹 평가자")
        d.find_element(By.ID, "start").click()
        for n in range(2):
            WebDriverWait(d, 30).until(lambda d: (d.execute_script("return document.body.dataset.task") or "").startswith("w"))
            item = d.execute_script("return document.body.dataset.task")
            answers = d.find_elements(By.CSS_SELECTOR, "#pair .answer")
            self.assertEqual(len(answers), 2)
            self.assertNotIn("one-token", d.find_element(By.ID, "pair").text, "blind: no configuration names")
            if n == 0:
                d.save_screenshot(os.path.join(ARTIFACTS, "panel-evaluate.png"))
            d.find_element(By.ID, "submit").click()
            self.assertIn("골라", d.find_element(By.ID, "vote-status").text, "a choice is required")
            d.find_element(By.CSS_SELECTOR, '.choice[data-choice="1"]').click()
            for slot in ("1", "2"):
                for c in ("accuracy", "grounding", "usefulness"):
                    d.find_element(By.CSS_SELECTOR, f'input[name="r{slot}-{c}"][value="{5 if slot == "1" else 2}"]').click()
            d.find_element(By.ID, "submit").click()
            WebDriverWait(d, 30).until(lambda d: d.execute_script("return document.body.dataset.task") != item)
        WebDriverWait(d, 30).until(lambda d: d.execute_script("return document.body.dataset.task") == "finished")
        self.assertTrue(d.find_element(By.ID, "finished").is_displayed())

        d.find_element(By.ID, "tab-admin").click()
        WebDriverWait(d, 30).until(lambda d: d.execute_script("return document.body.dataset.results") == "2")
        rows = d.find_elements(By.CSS_SELECTOR, "#results tr.pair-row")
        self.assertEqual(len(rows), 1)
        self.assertIn("full", rows[0].text)
        self.assertIn("5.00", d.find_element(By.ID, "results").text, "slot 1's ratings were all 5")
        d.save_screenshot(os.path.join(ARTIFACTS, "panel-results.png"))

    def test_a4_panel_survey_from_configurations(self):
        """The administrator types questions and two configurations (the eval's SPEC); the server
        answers them under each, the page shows the progress and then the new survey."""
        d = self.driver
        self.open_panel_admin()
        d.find_element(By.ID, "spec-name").send_keys("설정 비교 k5 대 k1")
        d.find_element(By.ID, "spec-questions").send_keys("입원하면 하루에 보험금을 얼마 받나요?\n보험금은 언제까지 청구해야 하나요?")
        specs = d.find_elements(By.CSS_SELECTOR, ".spec-config-spec")
        names = d.find_elements(By.CSS_SELECTOR, ".spec-config-name")
        names[1].clear(); names[1].send_keys("k1")
        specs[1].send_keys("k=1,max-tokens=8")
        specs[0].send_keys("max-tokens=8")
        d.find_element(By.ID, "create-spec").click()
        WebDriverWait(d, 240).until(lambda d: "만들었습니다" in d.find_element(By.ID, "spec-status").text
                                    or "못했습니다" in d.find_element(By.ID, "spec-status").text)
        self.assertIn("2문항", d.find_element(By.ID, "spec-status").text)
        d.save_screenshot(os.path.join(ARTIFACTS, "panel-admin-from-configurations.png"))
        # A bad SPEC is refused before any work, in words.
        specs[1].clear(); specs[1].send_keys("k=0")
        d.find_element(By.ID, "create-spec").click()
        WebDriverWait(d, 30).until(lambda d: "positive integer" in d.find_element(By.ID, "spec-status").text)

    def test_b_api_key_prompt(self):
        if not API_KEY:
            self.skipTest("server runs without an API key")
        d = self.driver
        self.open_page(None)
        self.ask(QUESTION)
        WebDriverWait(d, 30).until(lambda d: d.find_element(By.ID, "api-key").is_displayed())
        self.assertTrue(d.find_element(By.ID, "error").is_displayed())
        d.find_element(By.ID, "api-key").send_keys(API_KEY)
        d.find_element(By.ID, "save-api-key").click()
        self.assertEqual(d.execute_script("return localStorage.getItem(arguments[0])", KEY_NAME), API_KEY)
        self.wait_for_answer("web-api-key")  # the question is retried with the key
        self.assertGreaterEqual(len(d.find_elements(By.CSS_SELECTOR, "#sources .source")), 1)
        d.save_screenshot(os.path.join(ARTIFACTS, "web-api-key.png"))

    def test_c_guard_decisions_are_shown(self):
        # The page says why: a masked 주민등록번호 is named, and the number is nowhere on the page.
        d = self.driver
        self.open_page(API_KEY)
        self.ask(QUESTION + " 900101-1234568")
        self.wait_for_answer("web-guard")
        notes = [n.text for n in d.find_elements(By.CSS_SELECTOR, "#answer .guard-note")]
        self.assertTrue(any("주민등록번호" in n for n in notes), notes)
        for where in ("answer", "sources", "meta"):
            self.assertNotIn("1234568", d.find_element(By.ID, where).text, where)
        d.save_screenshot(os.path.join(ARTIFACTS, "web-guard.png"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
