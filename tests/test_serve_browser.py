"""The newsroom page and the API docs in a real browser: Debian's Chromium, driven by Playwright,
against a real ``newsanchor serve`` subprocess. A person's paths through the page (choose the
anchor, type a script, submit from the keyboard, watch the video, download it; make a new anchor
from recordings, follow its training, read its quality report, have it read a script), with
nothing fetched from beyond loopback and every form control labelled."""

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
from test_serve_anchors import CONSENT, tiny_config_yaml

from newsanchor.serve.settings import CONFIG_ENV

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
    """One real service for the module's tests (1 video worker, 1 anchor worker training with the
    tiny plan), stopped with all its processes after."""
    root = tmp_path_factory.mktemp("browser-newsroom")
    shutil.copytree(grid_anchor_bundle, root / "anchors" / grid_anchor_bundle.name)
    server = ServeProcess(root / "anchors", workers=1, log_path=root / "serve.log")
    try:
        with pytest.MonkeyPatch.context() as patch:  # the service reads it when it starts
            patch.setenv(CONFIG_ENV, str(tiny_config_yaml(root / "serve.yaml")))
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


def test_an_anchor_made_in_the_page_shows_its_progress_and_report_then_reads_a_script(browsing, actor_anchor_bundle):
    from playwright.sync_api import expect

    page = browsing.page
    page.goto(browsing.url + "/")
    page.get_by_label("Recordings", exact=True).set_input_files(str(actor_anchor_bundle.parent / "recordings" / "actor_00.mp4"))
    page.get_by_label("Anchor name", exact=True).fill("page-actor")
    page.get_by_label("Presenter's name", exact=True).fill("Synthetic test actor")
    make = page.get_by_role("button", name="Make the anchor")
    make.click()  # consent not given: the page says so, nothing is sent
    expect(page.get_by_role("alert")).to_contain_text("tick the consent box")
    expect(page.get_by_label("The presenter has agreed to become this virtual anchor")).to_be_focused()
    page.get_by_label("The presenter has agreed to become this virtual anchor").check()
    page.get_by_label("What was agreed, by whom and when").fill(CONSENT)
    page.get_by_label("Trial anchor: accept short recordings").check()  # the actor's take is 29 s
    make.click()

    # progress: the bar moves while it trains, with the stage in words (and an ETA once the pace is known)
    expect(page.locator("#anchor-progress-section")).to_be_visible()
    expect(page.locator("#anchor-label")).to_have_text("page-actor")
    page.wait_for_function("() => document.getElementById('anchor-progress').value > 0"
                           " && document.getElementById('anchor-status').textContent.startsWith('Working: ')",
                           timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#anchors tbody tr", has_text="page-actor")).to_contain_text("being made")

    # the report: each measure, anchor vs recording, target and verdict; the preview plays
    expect(page.locator("#anchor-report-section")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#anchor-status")).to_have_text("Done: the anchor is ready.")
    expect(page.locator("#anchor-progress")).to_have_attribute("value", "100")
    rows = page.locator("#quality-table tbody tr")
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("lip sync")
    assert all(re.search(r"(met|NOT met|not judged)$", text) for text in rows.all_inner_texts())
    expect(page.locator("#anchor-quality")).to_have_text(re.compile(r"^Synthetic test actor: quality (met|NOT met: .+)\.$"))
    expect(page.locator("#anchor-accepted li")).to_have_count(2)
    expect(page.locator("#anchor-accepted")).to_contain_text("in actor_00.mp4)")  # the upload's name, no server path
    expect(page.locator("#anchor-accepted")).not_to_contain_text(".newsanchor-outputs")
    page.wait_for_function("() => { const v = document.getElementById('anchor-preview');"
                           " return v.error === null && v.readyState >= 1 && v.duration > 0; }", timeout=30_000)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the report (Markdown)").click()
    assert "| lip sync" in Path(download.value.path()).read_text()
    # listed with its quality status, and offered for scripts without a restart
    quality = page.locator("#anchor-quality").text_content().split(": ", 1)[1].rstrip(".")  # "quality met", …
    expect(page.locator("#anchors tbody tr", has_text="page-actor")).to_contain_text(quality)
    anchor = page.get_by_role("radio", name=re.compile("page-actor"))
    anchor.check()
    page.get_by_label("Script", exact=True).fill("Good evening.")
    page.get_by_role("button", name="Make the video").click()
    expect(page.locator("#result-section")).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_role("status")).to_have_text("Done.")
    page.wait_for_function("() => { const v = document.getElementById('video');"
                           " return v.error === null && v.readyState >= 1 && v.duration > 0; }", timeout=30_000)
    jobs = httpx.get(browsing.url + "/api/jobs", timeout=30).json()
    assert [(j["kind"], j["anchor"], j["status"]) for j in jobs[:2]] == [("video", "page-actor", "done"),
                                                                       ("anchor", "page-actor", "done")]
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    assert browsing.offsite == [] and browsing.problems == []
