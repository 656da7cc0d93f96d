"""bdp.ops.report_html and report_svg: a self-contained page, its texts escaped and redacted,
and (in a real headless Chromium) a chart whose bars show the runs' outcomes and lengths."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from bdp.cli.render import styled
from bdp.models import Outcome, RunRecord
from bdp.ops.report import build_report
from bdp.ops.report_html import report_html
from bdp.ops.report_svg import MAX_TICKS, OUTCOME_COLOURS, colour, shorten, ticks
from tests.support.secrets import API_KEY

MINUTE = 60.0
NOW = time.mktime((2025, 6, 2, 12, 0, 0, 0, 0, -1))
HOSTILE = "<script>alert(\"x\")</script><img src=x onerror=alert(1)> & 'quoted'"


def record(issue: str, outcome: Outcome, start: float, end: float, **fields: object) -> RunRecord:
    """A run from NOW+start to NOW+end minutes on worker ``host/1-w`` unless told."""
    run = RunRecord(f"r-{issue}-{start}", issue, "/repo", f"title {issue}", outcome, "ok")
    run.started, run.finished, run.worker = NOW + start * MINUTE, NOW + end * MINUTE, "host/1-w"
    for name, value in fields.items():
        setattr(run, name, value)
    return run


def page(*records: RunRecord, window: float = 120 * MINUTE) -> str:
    return report_html(build_report(list(records), NOW, window), "2h")


def test_each_outcome_colour_is_a_shade_of_the_colour_bdp_status_gives_it() -> None:
    for outcome, (family, shade) in OUTCOME_COLOURS.items():
        assert styled(outcome) == f"[{family}]{outcome.value}[/]"
        assert re.fullmatch(r"#[0-9a-f]{6}", shade)
    assert set(OUTCOME_COLOURS) == set(Outcome)
    assert len({shade for _, shade in OUTCOME_COLOURS.values()}) == len(Outcome)


def test_a_hostile_title_and_worker_name_are_shown_as_text_never_as_markup() -> None:
    html = page(
        record("t-1", Outcome.DONE, -60, -30, title=HOSTILE, worker=HOSTILE),
        record("t-2", Outcome.FAILED, -20, -10, title=HOSTILE),
    )

    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "onerror=alert(1)&gt;" in html  # the text is there, inert
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&#x27;quoted&#x27;" in html  # quotes escaped too: safe inside attributes


def test_secrets_in_records_are_redacted_from_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)

    html = page(record(f"t-{API_KEY}", Outcome.DONE, -60, -30, title=f"leak {API_KEY}"))

    assert API_KEY not in html
    assert "leak ***" in html
    assert "t-***" in html  # the id drawn in the bar and in the tables too


def test_the_page_loads_nothing_and_runs_nothing() -> None:
    html = page(record("t-1", Outcome.DONE, -60, -30, lock_waits=1, lock_wait_seconds=30.0))

    assert "://" not in html
    for forbidden in ("<script", "<link", "src=", "href=", "@import", "@font-face"):
        assert forbidden not in html
    assert set(re.findall(r"url\([^)]*\)", html)) == {"url(#lockwait)"}  # the in-page hatch
    assert "Content-Security-Policy" in html
    assert "default-src 'none'" in html


def test_the_page_has_a_title_with_its_range_a_legend_and_a_time_axis() -> None:
    html = page(
        record("t-1", Outcome.DONE, -60, -30, attempt=2),
        record("t-2", Outcome.BLOCKED, -25, -5, lock_waits=1, lock_wait_seconds=60.0),
    )

    assert "<title>bdp report: 2025-06-02 10:00 to 2025-06-02 12:00" in html
    assert html.count('class="tick"') >= 3
    assert ">11:00</text>" in html  # a round tick inside the runs' span
    for label in ("DONE", "BLOCKED", "retry (attempt 2 or later)", "time waiting for locks"):
        assert f'class="legend" x="18" y="10">{label}</text>' in html
    assert 'class="legend" x="18" y="10">FAILED' not in html  # only outcomes drawn


def test_bar_widths_in_the_markup_are_proportional_to_the_runs_lengths() -> None:
    html = page(record("t-1", Outcome.DONE, -60, -40), record("t-2", Outcome.FAILED, -30, -20))

    widths = {
        fill: float(width)
        for width, fill in re.findall(r'width="([\d.]+)" height="18" fill="(#[0-9a-f]+)"', html)
    }
    assert widths[colour(Outcome.DONE)] == pytest.approx(2 * widths[colour(Outcome.FAILED)], 0.01)


def test_an_empty_window_says_so_instead_of_drawing_nothing() -> None:
    html = page()

    assert "no runs in this window" in html
    assert "<svg" in html


def test_ticks_fall_on_round_local_times_and_stay_few() -> None:
    for span in (5 * MINUTE, 40 * MINUTE, 7 * 3600, 3 * 86400):
        found = ticks(NOW + 17, NOW + 17 + span)
        assert 1 <= len(found) <= MAX_TICKS, span
        assert all(time.localtime(t).tm_sec == 0 for t in found)
        assert all(NOW + 17 <= t <= NOW + 17 + span for t in found)


def test_a_long_worker_name_keeps_its_host_and_its_thread() -> None:
    assert shorten("buildhost-0.example/123456-Worker-7", 21) == "buildhost-…6-Worker-7"
    assert shorten("short/1-w", 21) == "short/1-w"


# -- in a real browser -------------------------------------------------------------------------

#: Chromium as the test drives it: headless, its own profile, nothing but the file it is
#: given (every host name resolves to nothing, any request goes to a closed local port).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser; a missing one skips here but fails in CI (.ci/run installs it)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI: .ci/run installs it with apt-get")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    return found


def browse(chromium: str, tmp_path: Path, html: str, *how: str) -> subprocess.CompletedProcess[str]:
    page_file = tmp_path / "report.html"
    page_file.write_text(html, encoding="utf-8")
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    return subprocess.run(
        [chromium, *CHROMIUM_FLAGS, profile, *how, page_file.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    )


def screenshot(chromium: str, tmp_path: Path, html: str) -> Image.Image:
    shot = tmp_path / "shot.png"
    browse(chromium, tmp_path, html, f"--screenshot={shot}", "--window-size=1200,900")
    return Image.open(shot).convert("RGB")


@dataclass(frozen=True)
class Painted:
    """Where a colour covers whole rows of pixels: its rows and its leftmost/rightmost x."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def width(self) -> int:
        return self.right - self.left + 1


def painted(image: Image.Image, hex_colour: str, min_run: int = 40) -> Painted:
    """The extent of ``hex_colour`` over the rows where at least ``min_run`` pixels have it
    (a bar; the legend's and tables' small swatches stay under that)."""
    want = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    pixels, (width, height) = image.load(), image.size
    assert pixels is not None
    rows = []
    for y in range(height):
        xs = [x for x in range(width) if pixels[x, y] == want]
        if len(xs) >= min_run:
            rows.append((y, xs[0], xs[-1]))
    assert rows, f"no bar of {hex_colour} on the page"
    return Painted(rows[0][0], rows[-1][0], min(r[1] for r in rows), max(r[2] for r in rows))


DRAWN = (Outcome.DONE, Outcome.FAILED, Outcome.BLOCKED)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_chromium_draws_each_run_as_a_bar_as_long_as_the_run_in_its_outcomes_colour(
    chromium: str, tmp_path: Path
) -> None:
    # Given worker a: DONE for 20 minutes, then FAILED for 10; worker b: BLOCKED for 15
    html = page(
        record("t-done", Outcome.DONE, -40, -20, worker="a/1-w"),
        record("t-failed", Outcome.FAILED, -10, 0, worker="a/1-w"),
        record("t-blocked", Outcome.BLOCKED, -35, -20, worker="b/2-w"),
    )

    # When Chromium renders the page
    image = screenshot(chromium, tmp_path, html)

    # Then the page is not blank: its heading is drawn in dark ink near the top
    heading = image.convert("L").crop((0, 0, 400, 120)).histogram()
    assert sum(heading[:90]) > 200  # pixels darker than 90 of 255
    # And each outcome's bar is there, the DONE bar twice as wide as the FAILED one
    done, failed, blocked = (painted(image, colour(o)) for o in DRAWN)
    assert done.width == pytest.approx(2 * failed.width, rel=0.03)
    assert blocked.width == pytest.approx(0.75 * done.width, rel=0.03)
    assert done.width > 300  # the chart spans most of the page, not a thumbnail
    # And on the time axis: FAILED after DONE in the same row, BLOCKED 5 minutes in, one row down
    assert (failed.top, failed.bottom) == (done.top, done.bottom)
    assert failed.left - done.right == pytest.approx(done.width / 2, abs=3)  # the 10-minute gap
    assert blocked.top > done.bottom
    assert blocked.left - done.left == pytest.approx(done.width / 4, abs=3)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_chromium_parses_a_hostile_title_as_text(chromium: str, tmp_path: Path) -> None:
    html = page(record("t-1", Outcome.DONE, -40, -20, title=HOSTILE))

    dom = browse(chromium, tmp_path, html, "--dump-dom").stdout

    assert "<title>bdp report" in dom  # the page loaded, and its title is still its own
    assert "<script" not in dom.lower()
    assert "<img" not in dom.lower()
    assert "&lt;script&gt;alert" in dom
