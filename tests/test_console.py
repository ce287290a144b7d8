"""The web console in a real browser (Debian's Chromium through Selenium), against a running
daemon on the shipped clip: the grid with a placeholder for a dead camera, a camera's page,
the editor drawing a line that is saved, reloaded and counts, and auth off localhost."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.browser import chromium
from tests.daemon import Daemon
from tests.mqtt_helpers import free_port
from tests.paths import CLIP, MODEL
from tests.waiting import poll

TOKEN = "console-test-token"
# people walk across the middle of the clip all the time, so a line there counts soon
GATE = ((0.02, 0.55), (0.98, 0.55))

CONFIG = """\
# the console's test camera set
device_id: console
journal: {{path: {state}/events.db}}
metrics: {{host: 0.0.0.0, port: {port}, token: "${{EDGED_HTTP_TOKEN}}"}}
debug_view: {{host: 0.0.0.0, port: {port}, token: "${{EDGED_HTTP_TOKEN}}"}}
models:
  coco: {{path: {model}, backend: cpu}}
cameras:
  walkway:
    source: {{uri: {clip}, loop: true}}
    detect: {{model: coco, classes: [person]}}
    snapshots: {{on: [new], dir: {state}/snapshots, publish: false}}
    zones:
      plaza:                   # kept by the editor, comment and all
        polygon: [[0.45, 0.38], [0.75, 0.38], [0.75, 0.62], [0.45, 0.62]]
        loiter_s: 10
    lines:
      walkway:
        points: [[0.55, 0.58], [1.0, 0.58]]
        directions: {{in: bottom_to_top}}
  door:
    source:
      uri: rtsp://127.0.0.1:{dead}/door
      open_timeout_s: 2
      reconnect: {{floor_s: 0.5, ceiling_s: 1}}
    detect: {{model: coco}}
"""


class Console:
    def __init__(self, daemon: Daemon, base: str, config: Path) -> None:
        self.daemon, self.base, self.config = daemon, base, config

    def api(self, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
        request = urllib.request.Request(self.base + path)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def state(self) -> dict[str, Any]:
        status, state = self.api("/api/state")
        assert status == 200, state
        return state


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    port = free_port()
    config = tmp / "edged.yaml"
    config.write_text(CONFIG.format(state=tmp, port=port, model=MODEL, clip=CLIP, dead=free_port()))
    daemon = Daemon(config, env={"EDGED_HTTP_TOKEN": TOKEN})
    console = Console(daemon, f"http://127.0.0.1:{port}", config)
    try:
        assert daemon.wait_for(lambda events: any(e["kind"] == "object" for e in events), 60), (
            daemon.stderr
        )
        yield console
        assert daemon.terminate(within=10.0) < 10.0
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def wait(driver: Any, check: Any, timeout: float = 20.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: check(d))


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def test_off_localhost_a_request_without_the_token_is_refused(console: Console, browser: Any):
    for path in ("/", "/api/state", "/cameras/walkway/latest.jpg", "/metrics"):
        assert console.api(path, token=None)[0] == 401, path
        assert console.api(path, token="wrong")[0] == 401, path
    post = urllib.request.Request(
        console.base + "/api/cameras/walkway/geometry",
        data=b'{"zones": {}, "lines": {}, "save": true}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    assert refused.value.code == 401
    browser.get(console.base + "/")
    assert "authentication required" in browser.page_source
    assert not css(browser, "#grid")


def test_the_grid_shows_every_camera_and_says_why_the_dead_one_has_no_picture(
    console: Console, browser: Any
) -> None:
    browser.get(f"{console.base}/?token={TOKEN}")
    cards = wait(browser, lambda d: (c := css(d, "article.card")) and len(c) == 2 and c)
    names = [c.get_attribute("data-camera") for c in cards]
    assert names == ["walkway", "door"]
    door = css(browser, 'article[data-camera="door"] .placeholder')[0]
    wait(browser, lambda d: door.is_displayed() and "refused" in door.text.lower())
    assert door.text.splitlines()[0] in ("reconnecting", "no signal")
    walkway = css(browser, 'article[data-camera="walkway"]')[0]
    # the live camera: its picture (the clip's size, loaded with the token), no placeholder
    picture = walkway.find_element("css selector", "img")
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", picture) == 768)
    assert not walkway.find_element("css selector", ".placeholder").is_displayed()
    badge = wait(browser, lambda d: walkway.find_element("css selector", ".badge"))
    assert badge.text == "streaming"
    assert "walkway: in" in walkway.find_element("css selector", ".counts").text


def test_a_camera_page_shows_its_state_counts_events_and_links(
    console: Console, browser: Any
) -> None:
    browser.get(f"{console.base}/cameras/walkway?token={TOKEN}")
    wait(browser, lambda d: css(d, '#lines tr[data-line="walkway"]'))
    wait(browser, lambda d: "streaming" in css(d, "#state")[0].text)
    assert css(browser, '#zones tr[data-zone="plaza"]')
    # new objects, each with its snapshot, as the clip's people appear
    events = wait(browser, lambda d: css(d, '#events li[data-kind="object"] img'), 30)
    shot = events[0]
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", shot) > 0)
    live = css(browser, "#live")[0]
    assert "stream.mjpeg" in live.get_attribute("src")
    links = {a.text: a.get_attribute("href") for a in css(browser, "#links a")}
    assert set(links) == {"cameras", "metrics", "health"}
    browser.get(links["health"])  # the token travels with the link
    assert '"status"' in browser.page_source


def test_a_line_drawn_in_the_editor_is_saved_reloaded_and_counts(
    console: Console, browser: Any
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    before = console.config.read_text()
    browser.get(f"{console.base}/cameras/walkway/edit?token={TOKEN}")
    wait(browser, lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    still = css(browser, "#still-image")[0]
    wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", still) == 768)
    svg = css(browser, "#shapes")[0]
    # the config's zone and line, drawn on the still
    assert {g.get_attribute("data-name") for g in css(browser, "#shapes g")} == {
        "plaza",
        "walkway",
    }

    def click_at(x: float, y: float) -> None:
        box = svg.rect
        dx, dy = (x - 0.5) * box["width"], (y - 0.5) * box["height"]
        ActionChains(browser).move_to_element_with_offset(svg, int(dx), int(dy)).click().perform()

    # a zone that crosses itself is refused by the config's own rules; the file stays
    css(browser, "#add-zone")[0].click()
    for x, y in ((0.1, 0.1), (0.3, 0.3), (0.3, 0.1), (0.1, 0.3)):
        click_at(x, y)
    css(browser, "#finish")[0].click()
    css(browser, "#save")[0].click()
    result = css(browser, "#result")[0]
    wait(browser, lambda d: "not saved" in result.text)
    assert "invalid polygon" in result.text.lower() or "self-intersection" in result.text.lower()
    assert console.config.read_text() == before
    css(browser, "#delete")[0].click()

    # a new line across the walkway, named, its in side flipped, saved
    css(browser, "#add-line")[0].click()
    click_at(*GATE[0])
    click_at(*GATE[1])
    name = css(browser, "#line-list li.selected input")[0]
    assert name.get_attribute("value") == "line_1"
    name.send_keys(Keys.CONTROL, "a")
    name.send_keys("gate", Keys.TAB)
    arrow = css(browser, '#shapes g[data-name="gate"] line.arrow')[0]
    pointing_down = float(arrow.get_attribute("y2")) > float(arrow.get_attribute("y1"))
    css(browser, "#flip")[0].click()
    arrow = css(browser, '#shapes g[data-name="gate"] line.arrow')[0]
    assert (float(arrow.get_attribute("y2")) > float(arrow.get_attribute("y1"))) != pointing_down
    css(browser, "#save")[0].click()
    wait(browser, lambda d: result.text.startswith("saved"), 60)
    assert "updated: walkway" in result.text

    saved = yaml.safe_load(console.config.read_text())
    gate = saved["cameras"]["walkway"]["lines"]["gate"]
    for got, want in zip(gate["points"], GATE, strict=True):
        assert got == pytest.approx(list(want), abs=0.01)
    assert gate["directions"]["in"] == ("bottom_to_top" if pointing_down else "top_to_bottom")
    assert set(saved["cameras"]["walkway"]["lines"]) == {"walkway", "gate"}
    assert "# kept by the editor, comment and all" in console.config.read_text()
    backups = list(console.config.parent.glob("edged.yaml.*.bak"))
    assert [b.read_text() for b in backups] == [before]

    # the reload applied it: the next crossing counts on the new line, live in the editor
    crossed = console.daemon.wait_for(
        lambda events: any(e["kind"] == "line_crossing" and e["line"] == "gate" for e in events),
        90,
    )
    assert crossed, console.daemon.stderr[-2000:]
    lines = poll(
        lambda: {ln["name"]: ln for ln in console.state()["cameras"]["walkway"]["lines"]}, 5
    )
    assert lines["gate"]["in"] + lines["gate"]["out"] >= 1
    count = css(browser, "#line-list li")[1].find_element("css selector", ".count")
    wait(browser, lambda d: count.text != "not saved" and count.text.startswith("in "))
