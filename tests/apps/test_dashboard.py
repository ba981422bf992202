"""The dashboard in a real browser: Debian's Chromium driven by Playwright.

Without playwright or Chromium these tests are skipped, except in CI (``CI``
set), where they fail. ``WONDERQ_SCREENSHOT=1`` saves the screenshot to
``docs/dashboard.png`` instead of the test's temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.apps.test_devtool import DevToolServer, eventually
from tests.conftest import BrokerProcess

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError as exc:  # checked by the browser fixture: skipped, or failed in CI
    PLAYWRIGHT_MISSING: str | None = f"playwright is not installed ({exc})"
else:
    PLAYWRIGHT_MISSING = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the UI is backend-blind


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = PLAYWRIGHT_MISSING
    if problem is None and not os.access(CHROMIUM, os.X_OK):
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the dashboard tests need a browser in CI: {problem}")
        pytest.skip(problem)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def dashboard(browser: Browser, broker: BrokerProcess) -> Iterator[tuple[Page, httpx.Client]]:
    """A page on a dev tool in front of this test's broker, and an HTTP client of the broker.
    The test fails if the page logs an error or a dialog other than a confirm appears."""
    errors: list[str] = []
    with DevToolServer(broker.url, interval=0.25) as server, httpx.Client(base_url=broker.url) as wq:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("dialog", lambda d: d.accept() if d.type == "confirm" else errors.append(d.message))
        page.goto(server.url)
        yield page, wq
        page.close()
    assert errors == []


def row(page: Page, name: str) -> Any:
    return page.locator("#queues tbody tr", has=page.get_by_role("cell", name=name, exact=True))


def cell(page: Page, name: str, column: int) -> Any:
    """A queue's count: column 1 messages, 2 visible, 3 in flight, 4 delayed."""
    return row(page, name).locator("td").nth(column)


@sqlite_only
def test_create_send_browse_and_purge(dashboard: tuple[Page, httpx.Client]) -> None:
    page, wq = dashboard
    wq.post("/queues", json={"name": "existing"}).raise_for_status()
    expect(row(page, "existing")).to_be_visible()

    page.get_by_label("New queue name").fill("ui-jobs")
    page.get_by_role("button", name="Create queue").click()
    expect(row(page, "ui-jobs")).to_have_class("selected")
    expect(page.locator("#queue-title")).to_have_text("ui-jobs")
    expect(cell(page, "ui-jobs", 1)).to_have_text("0")

    page.get_by_label("Message body").fill("hello from the dashboard")
    page.get_by_role("button", name="Send message").click()
    expect(cell(page, "ui-jobs", 1)).to_have_text("1")
    wq.post("/messages", json={"queue_name": "ui-jobs", "body": "from elsewhere"}).raise_for_status()
    expect(cell(page, "ui-jobs", 1)).to_have_text("2")  # counts move without a reload

    messages = page.locator("#messages tbody tr")
    expect(messages).to_have_count(2)
    expect(messages.nth(0).locator("td").nth(1)).to_have_text("hello from the dashboard")
    expect(messages.nth(0).locator("td").nth(2)).to_have_text("visible")
    expect(messages.nth(0).locator("td").nth(3)).to_have_text("0")
    wq.get("/messages/consume", params={"queue_name": "ui-jobs", "wait_time": 0}).raise_for_status()
    expect(messages.nth(0).locator("td").nth(2)).to_have_text("in flight")
    expect(cell(page, "ui-jobs", 3)).to_have_text("1")
    stats = wq.get("/queues").json()[1]
    assert (stats["queue_size"], stats["retrievable_size"]) == (2, 1)  # browsing consumed nothing

    page.get_by_role("button", name="Purge").click()
    expect(cell(page, "ui-jobs", 1)).to_have_text("0")
    expect(messages).to_have_text(["No messages."])
    expect(page.locator("#status")).to_have_text("Purged 2 messages from ui-jobs")


@sqlite_only
def test_paging_filter_and_deletes(dashboard: tuple[Page, httpx.Client]) -> None:
    page, wq = dashboard
    for name in ("alpha", "beta", "gamma"):
        wq.post("/queues", json={"name": name}).raise_for_status()
    batch = [{"body": f"message {i}"} for i in range(10)]
    for _ in range(3):
        wq.post("/messages", json={"queue_name": "beta", "messages": batch}).raise_for_status()
    expect(cell(page, "beta", 1)).to_have_text("30")

    page.get_by_label("Filter queues").fill("ET")
    expect(page.locator("#queues tbody tr:visible")).to_have_count(1)
    row(page, "beta").click()
    messages = page.locator("#messages tbody tr")
    expect(messages).to_have_count(25)
    page.locator("#next-page").click()
    expect(messages).to_have_count(5)
    expect(page.locator("#next-page")).to_be_disabled()
    page.locator("#prev-page").click()
    expect(messages).to_have_count(25)

    first_id = messages.nth(0).get_attribute("data-id")
    messages.nth(0).get_by_role("button", name="Delete").click()
    expect(cell(page, "beta", 1)).to_have_text("29")
    expect(messages.nth(0)).not_to_have_attribute("data-id", first_id or "")

    page.get_by_role("button", name="Delete queue").click()
    expect(row(page, "beta")).to_have_count(0)
    expect(page.locator("#queue-panel")).to_be_hidden()
    page.get_by_label("Filter queues").fill("")
    expect(page.locator("#queues tbody tr")).to_have_count(2)
    assert [q["name"] for q in wq.get("/queues").json()] == ["alpha", "gamma"]


@sqlite_only
def test_screenshot(dashboard: tuple[Page, httpx.Client], tmp_path: Path) -> None:
    """The dashboard with a few queues, some traffic, and the selected queue's charts."""
    page, wq = dashboard
    for name in ("emails", "payments", "reports", "thumbnails", "webhooks"):
        wq.post("/queues", json={"name": name}).raise_for_status()
    stop = threading.Event()
    traffic = threading.Thread(target=make_traffic, args=(wq.base_url, stop), daemon=True)
    traffic.start()
    try:
        row(page, "emails").click()
        page.get_by_label("Window").select_option("60")
        page.wait_for_timeout(8000)
    finally:
        stop.set()
        traffic.join(10)
    expect(page.locator("#messages tbody tr")).not_to_have_count(0)
    page.route("**/api/overview*", as_make_run_shows_it)
    expect(page.locator("#broker")).to_have_text("broker http://127.0.0.1:3213")
    path = SCREENSHOT if os.environ.get("WONDERQ_SCREENSHOT") else tmp_path / "dashboard.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def as_make_run_shows_it(route: Any) -> None:
    """The dev tool's overview with the broker's address as `make run` shows it: this test's
    broker listens on a free port, which the screenshot in docs/ should not show."""
    response = route.fetch()
    route.fulfill(response=response, json=response.json() | {"broker": "http://127.0.0.1:3213"})


def make_traffic(url: httpx.URL, stop: threading.Event) -> None:
    """Sends in bursts, receives and deletes some, leaves some in flight and delayed."""
    with httpx.Client(base_url=url) as wq:
        wq.post("/messages", json={"queue_name": "reports", "body": "monthly", "delay_seconds": 600})
        wq.post("/messages", json={"queue_name": "thumbnails", "body": "img-1.png"})
        tick = 0
        while not stop.wait(0.25):
            tick += 1
            bodies = [{"body": f'{{"to": "user{tick}-{i}@example.com", "template": "welcome"}}'}
                      for i in range(1 + tick % 4 * 3)]
            wq.post("/messages", json={"queue_name": "emails", "messages": bodies})
            wq.post("/messages", json={"queue_name": "payments", "body": f'{{"order": {tick}}}'})
            taken = wq.get("/messages/consume", params={"queue_name": "emails", "size": 6, "wait_time": 0})
            for message in taken.json()[: tick % 3 + 2]:
                wq.delete(f"/messages/{message['id']}",
                          params={"reservation_token": message["reservation_token"]})


@sqlite_only
def test_dead_letter_fifo_tags_and_move_back(dashboard: tuple[Page, httpx.Client]) -> None:
    """A dead-letter queue shows its link and a button that starts a move task."""
    page, wq = dashboard
    wq.post("/queues", json={"name": "dead"}).raise_for_status()
    wq.post("/queues", json={"name": "work", "redrive_target": "dead", "max_receive_count": 1}).raise_for_status()
    wq.post("/queues", json={"name": "ordered.fifo"}).raise_for_status()
    wq.post("/messages", json={"queue_name": "work", "body": "poison"}).raise_for_status()
    for _ in range(2):  # the second receive moves it to "dead"
        wq.get("/messages/consume", params={"queue_name": "work", "wait_time": 0, "visibility_timeout": 0})
    row(page, "work").click()
    stats = page.locator("#queue-stats")
    expect(stats).to_contain_text("dead after 1")
    expect(page.get_by_role("button", name="Move messages back")).to_be_hidden()
    row(page, "ordered.fifo").click()
    expect(stats.locator("dd").nth(10)).to_have_text("yes")
    row(page, "dead").click()
    expect(cell(page, "dead", 1)).to_have_text("1")
    page.get_by_role("button", name="Move messages back").click()
    expect(page.locator("#status")).to_have_text("Moving 1 messages back from dead")
    expect(cell(page, "work", 1)).to_have_text("1")
    expect(cell(page, "dead", 1)).to_have_text("0")


@sqlite_only
def test_stats_wrap_between_pairs_and_charts_smooth_rates(dashboard: tuple[Page, httpx.Client]) -> None:
    page, wq = dashboard
    wq.post("/queues", json={"name": "narrow"}).raise_for_status()
    page.set_viewport_size({"width": 700, "height": 900})
    row(page, "narrow").click()
    pairs = page.locator("#queue-stats > div")
    expect(pairs.first).to_be_visible()
    assert pairs.count() == page.locator("#queue-stats dt").count() > 6
    for i in range(pairs.count()):  # each label on the same line as its value, however the row wraps
        label, value = pairs.nth(i).locator("dt").bounding_box(), pairs.nth(i).locator("dd").bounding_box()
        assert label is not None and value is not None
        assert abs(label["y"] - value["y"]) < 8, (i, label, value)
    # a per-second saw-tooth becomes its trailing mean over the window's twentieth (at least 5 s)
    got = page.evaluate("movingMean([0, 1000, 2000, 3000, 4000, 5000, 6000], [0, 10, 0, 10, 0, 10, 0], 5000)")
    assert got == [0, 5, 10 / 3, 5, 4, 6, 4]  # from 5 s on: the last 5 samples
    widths = page.evaluate("""() => {
        const seen = [];
        const canvas = document.getElementById('rate-chart');
        const ctx = canvas.getContext('2d');
        const stroke = ctx.stroke.bind(ctx);
        ctx.stroke = () => { seen.push(ctx.lineWidth); stroke(); };
        drawCharts();
        ctx.stroke = stroke;
        return seen.slice(-3);
    }""")
    assert widths[0] > widths[1] > widths[2]  # equal series stay visible: the first drawn is widest


def keys(broker: BrokerProcess, *args: str) -> str:
    """``wonderq keys <args>`` on the broker's database; its stdout."""
    done = subprocess.run([sys.executable, "-m", "wonderq", "keys", *args, "--db", str(broker.db)],
                          capture_output=True, text=True, check=True, timeout=60)
    return done.stdout.strip()


@sqlite_only
def test_login_then_a_revoked_key_then_logout(browser: Browser, broker: BrokerProcess) -> None:
    own, key = keys(broker, "create", "--scope", "admin"), keys(broker, "create", "--scope", "admin")
    with httpx.Client(base_url=broker.url, headers={"authorization": f"Bearer {own}"}) as wq:
        assert eventually(lambda: httpx.get(f"{broker.url}/queues").status_code == 401)  # the keys are loaded
        wq.post("/queues", json={"name": "secret-jobs"}).raise_for_status()
    errors: list[str] = []
    with DevToolServer(broker.url, interval=0.25, api_key=own) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.goto(server.url)
        expect(page.locator("#login")).to_be_visible()
        expect(row(page, "secret-jobs")).to_have_count(0)  # the dev tool's own key shows a browser nothing

        page.get_by_label("API key").fill(key + "x")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#login-error")).to_contain_text("unknown or revoked API key")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("#login")).to_be_hidden()
        expect(row(page, "secret-jobs")).to_be_visible()
        assert page.evaluate("document.cookie") == ""  # HttpOnly: no script of the page sees the key
        page.get_by_label("New queue name").fill("ui-jobs")
        page.get_by_role("button", name="Create queue").click()
        expect(row(page, "ui-jobs")).to_have_class("selected")

        keys(broker, "revoke", key.split("_")[1])  # wq_<id>_<secret>
        expect(page.locator("#login")).to_be_visible()  # within the broker's reload, about a second
        expect(page.locator("#login-error")).to_contain_text("unknown or revoked API key")
        expect(row(page, "secret-jobs")).to_have_count(0)
        key = keys(broker, "create", "--scope", "read")
        reader = {"authorization": f"Bearer {key}"}
        assert eventually(lambda: httpx.get(f"{broker.url}/queues", headers=reader).status_code == 200)
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Log in").click()
        expect(row(page, "secret-jobs")).to_be_visible()

        page.get_by_role("button", name="Log out").click()
        expect(page.locator("#login")).to_be_visible()
        expect(row(page, "secret-jobs")).to_have_count(0)
        page.close()
    assert errors == []
