"""The newsroom page and the API docs in a real browser: Debian's Chromium, driven by Playwright,
against a real ``newsanchor serve`` subprocess. A person's path through the page (choose the
anchor, type a script, submit from the keyboard, watch the video, download it), with nothing
fetched from beyond loopback and every form control labelled."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import missing_dependency
from serve_process import ServeProcess

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright's own browser downloads are never used
JOB_TIMEOUT_MS = 300_000  # a short script on a busy 2-core machine takes seconds; this only bounds a hang

# Every labelable control without a label that says something (dynamic ones included). Buttons
# are named by their text or aria-label.
UNLABELLED_CONTROLS = """() => {
  const named = (el) => (el.labels && [...el.labels].some((l) => l.textContent.trim()))
    || (el.getAttribute("aria-label") || "").trim()
    || (el.getAttribute("aria-labelledby") || "").split(/\\s+/).some((id) => document.getElementById(id)?.textContent.trim());
  const controls = [...document.querySelectorAll("input, select, textarea, progress, meter, output")]
    .filter((el) => el.type !== "hidden" && !named(el));
  const buttons = [...document.querySelectorAll("button")]
    .filter((b) => !b.textContent.trim() && !(b.getAttribute("aria-label") || "").trim());
  return [...controls, ...buttons].map((el) => el.outerHTML);
}"""


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.is_file():
        missing_dependency(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_dependency("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        # names resolve to nothing, so even a request that slipped past the route below could not
        # leave the machine; 127.0.0.1, the service, is left as it is
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                             args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def newsroom(grid_anchor_bundle, tmp_path_factory):
    """One real service for the module's tests (1 worker), stopped with all its processes after."""
    root = tmp_path_factory.mktemp("browser-newsroom")
    shutil.copytree(grid_anchor_bundle, root / "anchors" / grid_anchor_bundle.name)
    server = ServeProcess(root / "anchors", workers=1, log_path=root / "serve.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def browsing(chromium, newsroom):
    """A fresh browser context on the service: its page, the requests that tried to leave
    loopback (aborted), and the errors the page logged (script errors, blocked content)."""
    context = chromium.new_context(accept_downloads=True)
    offsite: list[str] = []
    problems: list[str] = []

    def refuse(route):
        offsite.append(route.request.url)
        route.abort()

    context.route(lambda url: urlsplit(url).hostname != "127.0.0.1", refuse)
    page = context.new_page()
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield SimpleNamespace(page=page, offsite=offsite, problems=problems, url=newsroom.url)
    finally:
        context.close()


def test_a_script_typed_in_the_page_becomes_a_playable_video_with_downloads(browsing):
    from playwright.sync_api import expect

    page = browsing.page
    page.goto(browsing.url + "/")
    anchor = page.get_by_role("radio", name=re.compile("grid-s1"))
    anchor.check()
    expect(anchor).to_be_checked()
    script = page.get_by_label("Script", exact=True)
    script.click()
    page.keyboard.type("Good evening. Here is the news.")
    expect(page.locator("#script-count")).to_have_text(re.compile(r"^31 of 20,000 characters$"))
    page.get_by_label("Title", exact=True).fill("Evening news")
    page.keyboard.press("Enter")  # submits the form from the title field, as a keyboard user would

    expect(page.locator("#result-section")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_role("status")).to_have_text("Done.")
    expect(page.locator("#progress")).to_have_attribute("value", "100")
    video = page.locator("#video")
    expect(video).to_have_attribute("src", re.compile(r"^/api/jobs/[0-9a-f]{32}/video$"))
    # playable: Chromium decoded the mp4's header and, once started, its pictures
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " return v.error === null && v.readyState >= 1 && v.duration > 0; }", timeout=30_000)
    duration = video.evaluate("v => { v.muted = true; return v.play().then(() => v.duration); }")
    assert 1.0 < duration < 10.0
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " return v.readyState >= 2 && v.currentTime > 0; }", timeout=30_000)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the video (mp4)").click()
    mp4 = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename.endswith(".mp4") and mp4[4:8] == b"ftyp" and len(mp4) > 10_000
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the captions (WebVTT)").click()
    captions = Path(download.value.path()).read_text()
    assert captions.startswith("WEBVTT") and "Good evening." in captions

    expect(page.locator("#recent tbody tr")).to_have_count(1)
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    assert browsing.offsite == [] and browsing.problems == []


def test_the_api_docs_list_every_operation_without_the_internet(browsing):
    from playwright.sync_api import expect

    page = browsing.page
    page.goto(browsing.url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=60_000)
    description = httpx.get(browsing.url + "/openapi.json", timeout=30).json()
    operations = sorted((method.upper(), path) for path, methods in description["paths"].items() for method in methods)
    shown = page.locator(".opblock").evaluate_all(
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent.trim(),"
        " b.querySelector('.opblock-summary-path').getAttribute('data-path')])")
    assert sorted(map(tuple, shown)) == operations and ("POST", "/api/jobs") in operations
    expect(page.get_by_role("heading", name=re.compile("newsanchor newsroom"))).to_be_visible()
    assert browsing.offsite == [] and browsing.problems == []  # CSP violations would be console errors
