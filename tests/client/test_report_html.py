"""The HTML report, rendered by headless Chromium: the figures are on the page and the charts drew."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from modelpress import Client
from service.report.html import render_html
from service.report.tables import number
from tests.figures import recording
from tests.fixtures.infrastructure import ROOT

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1000",
)
# The README's picture: rewritten only by a recording run (`make chaos-report`), else taken in tmp_path.
SCREENSHOT = ROOT / "docs" / "report-screenshot.png"

# Non-blank pixels of each chart canvas, read back from the page.
INKED_PIXELS = """
return Array.from(document.querySelectorAll('canvas[data-chart]')).map(canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked++;
  return [canvas.dataset.chart, inked, Chart.getChart(canvas).data.datasets.length];
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def open_page(browser: webdriver.Chrome, html: str, path: Path) -> dict[str, tuple[int, int]]:
    """Load the page from a file; return {chart id: (inked pixels, datasets)} once the charts drew."""
    path.write_text(html, encoding="utf-8")
    browser.get(path.as_uri())
    WebDriverWait(browser, 20).until(
        lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-charts-drawn")
    )
    return {chart: (inked, datasets) for chart, inked, datasets in browser.execute_script(INKED_PIXELS)}


def test_report_page_shows_the_figures_and_charts(
    browser: webdriver.Chrome, live_server: Any, tenant_key: str, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    with Client(live_server.url, tenant_key) as client:
        html = client.report_html(finished_job["id"])
    comparison = finished_job["comparison"]

    charts = open_page(browser, html, tmp_path / "report.html")
    text = browser.find_element(By.TAG_NAME, "body").text

    assert set(charts) == {
        "latency",
        "throughput",
        "quality",
        "final-sparsity",
        "step0-per_layer_sparsity",
        "node-errors",
        "profile",
    }
    assert charts["profile"][1] == 2  # ms per op type in the original and in the compressed model
    # The first line is the recommendation in words; the per-step table shows what each step added.
    first = browser.find_element(By.CSS_SELECTOR, "main > *")
    assert first.get_attribute("id") == "recommendation"
    assert first.text.startswith(("Use prune.magnitude then quantize.dynamic", "Keep the original"))
    per_step = browser.find_element(By.ID, "per-step").text
    assert "1. prune.magnitude" in per_step and "2. quantize.dynamic" in per_step
    assert number(comparison["per_step"][1]["size_bytes"], 0) in per_step
    assert charts["node-errors"][1] == 2  # each node's relative error and the part it added
    for row in comparison["node_errors"]:
        assert row["node"] in text
    assert all(inked > 2000 for inked, _ in charts.values()), charts
    assert charts["latency"][1] == 6  # p50, p95, p99 of the original and of the compressed model
    for batch in ("1", "8", "32"):
        for side in ("baseline", "candidate"):
            assert number(comparison[side]["latency_ms"][batch]["p50"]) in text
    assert number(comparison["candidate"]["accuracy"]["top1"], 4) in text
    for warning in comparison["verdict"]["warnings"]:
        assert warning in text
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert "<script src" not in html and "<link" not in html  # self-contained: nothing to fetch
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height)
    screenshot = SCREENSHOT if recording() else tmp_path / SCREENSHOT.name
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_auto_quantization_trials_and_node_errors_are_charted(
    browser: webdriver.Chrome, live_server: Any, tenant_key: str, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    with Client(live_server.url, tenant_key) as client:
        report = copy.deepcopy(client.report(finished_job["id"]).raw)
    p50 = report["comparison"]["candidate"]["latency_ms"]["1"]["p50"]
    top1 = report["comparison"]["candidate"]["accuracy"]["top1"]
    # The shape quantize.auto records: one entry per accuracy/latency trial, plus per-node errors.
    report["steps"][1]["metrics"]["trials"] = [
        {"excluded_nodes": [], "accuracy": top1 - 0.02, "latency_ms": p50},
        {"excluded_nodes": ["/net/net.0/Gemm"], "accuracy": top1 - 0.01, "latency_ms": {"p50": p50 * 1.1}},
        {
            "excluded_nodes": ["/net/net.0/Gemm", "/net/net.2/Gemm"],
            "accuracy": top1,
            "latency_ms": {"1": {"p50": p50 * 1.3}},
        },
    ]
    report["steps"][1]["metrics"]["node_errors"] = {"/net/net.0/Gemm": 0.02, "/net/net.2/Gemm": 0.005}

    charts = open_page(browser, render_html(report), tmp_path / "auto.html")

    assert charts["quality"][1] == 2 + 3  # original, compressed and three trials
    assert charts["step1-node_errors"][1] == 1
    assert all(inked > 1000 for inked, _ in charts.values()), charts


WRAPPED_LABELS = """
return Chart.getChart(document.querySelector('canvas[data-chart="node-errors"]')).data.labels;
"""
CLIPPED_CELLS = """
return Array.from(document.querySelectorAll('#comparison td'))
  .filter(td => td.scrollWidth > td.clientWidth + 1).length;
"""


def test_search_trials_draw_a_pareto_chart_and_long_node_names_wrap(
    browser: webdriver.Chrome, live_server: Any, tenant_key: str, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    with Client(live_server.url, tenant_key) as client:
        report = copy.deepcopy(client.report(finished_job["id"]).raw)
    p50 = report["comparison"]["candidate"]["latency_ms"]["1"]["p50"]
    size = report["comparison"]["candidate"]["size_bytes"]
    # quantize.auto's own trial rows (engine.techniques.quantize.auto.search.Trial.as_dict).
    common = {"config": "static", "accuracy": 0.9, "within_budget": True, "speedup": 1.5, "seconds": 1.0}

    def trial(
        number: int, excluded: list[str], drop: float, latency: float, size_bytes: int
    ) -> dict[str, Any]:
        row = {"trial": number, "excluded_nodes": excluded, "accuracy_drop": drop, "latency_ms": latency}
        return {**common, **row, "size_bytes": size_bytes}

    report["steps"][1]["metrics"].update(
        chosen_trial=2,
        trials=[
            trial(1, [], 0.03, p50, size),
            trial(2, ["a"], 0.01, p50 * 1.1, size),
            # Slower, larger and less accurate than trial 2: not on the frontier.
            trial(3, ["b"], 0.02, p50 * 1.2, size * 2),
        ],
    )
    long_name = "/model/encoder/layers.11/self_attention/output_projection/MatMul_with_a_long_name"
    report["comparison"]["node_errors"][0]["node"] = long_name

    charts = open_page(browser, render_html(report), tmp_path / "pareto.html")

    assert charts["pareto"][1] == 3  # the frontier line, every trial, the chosen one ringed
    pareto = browser.execute_script(
        "return Chart.getChart(document.querySelector('canvas[data-chart=\"pareto\"]')).data.datasets"
        ".map(d => d.data.length);"
    )
    assert pareto == [2, 3, 1]
    assert browser.find_element(By.ID, "recommendation").text.startswith(
        (
            "Use prune.magnitude then quantize.dynamic trial 2 (static, 1 nodes kept float)",
            "Keep the original",
        )
    )
    labels = browser.execute_script(WRAPPED_LABELS)
    assert (
        isinstance(labels[0], list)
        and "".join(labels[0]) == f"{long_name} ({report['comparison']['node_errors'][0]['op_type']})"
    )
    assert all(len(line) <= 32 for line in labels[0])
    assert long_name in browser.find_element(By.ID, "comparison").text.replace("\n", "")
    assert browser.execute_script(CLIPPED_CELLS) == 0


def test_sections_that_do_not_apply_are_hidden(
    browser: webdriver.Chrome, live_server: Any, tenant_key: str, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    """A quantize-only report: no sparsity bars, no per-step table, no Pareto chart without trials."""
    with Client(live_server.url, tenant_key) as client:
        report = copy.deepcopy(client.report(finished_job["id"]).raw)
    report["steps"] = [{**report["steps"][1], "index": 0}]
    report["comparison"]["per_step"] = None

    charts = open_page(browser, render_html(report), tmp_path / "quantize-only.html")

    assert "final-sparsity" not in charts and "pareto" not in charts
    assert {"latency", "profile", "node-errors"} <= set(charts)
    assert not browser.find_elements(By.ID, "per-step")


def test_the_page_is_served_with_a_strict_csp_under_which_it_still_draws(
    browser: webdriver.Chrome, live_server: Any, tenant_key: str, finished_job: dict[str, Any], tmp_path: Path
) -> None:
    response = httpx.get(
        f"{live_server.url}/v1/jobs/{finished_job['id']}/report",
        headers={"Authorization": f"Bearer {tenant_key}", "Accept": "text/html"},
        timeout=60,
    )
    policy = response.headers["content-security-policy"]
    nonce = policy.split("'nonce-", 1)[1].split("'", 1)[0]
    # The header's policy as a <meta> (a page opened from a file has no headers), and a script an
    # attacker slipped in without the nonce: it must not run, while the page's own scripts do.
    meta = f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
    injected = "<script>document.body.dataset.injected = 'ran'</script>"
    page = response.text.replace("<head>", "<head>" + meta, 1).replace("</main>", injected + "</main>", 1)

    charts = open_page(browser, page, tmp_path / "csp.html")

    assert "default-src 'none'" in policy and "unsafe-inline" not in policy.split("style-src-attr")[0]
    assert response.text.count(f'nonce="{nonce}"') == 3  # the stylesheet, Chart.js, the chart setup
    assert charts and all(inked > 1000 for inked, _ in charts.values()), charts
    assert browser.execute_script("return document.body.dataset.injected") is None
    styled = "return getComputedStyle(document.querySelector('main')).getPropertyValue('--ink')"
    assert browser.execute_script(styled).strip() == "#0f172a"  # the nonced stylesheet applied


def test_a_second_request_gets_a_fresh_nonce(
    live_server: Any, tenant_key: str, finished_job: dict[str, Any]
) -> None:
    url = f"{live_server.url}/v1/jobs/{finished_job['id']}/report"
    headers = {"Authorization": f"Bearer {tenant_key}", "Accept": "text/html"}
    first, second = (httpx.get(url, headers=headers, timeout=60) for _ in range(2))

    assert first.headers["content-security-policy"] != second.headers["content-security-policy"]
