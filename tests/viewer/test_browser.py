"""The viewer in a real headless Chromium, on datasets made by `spatialvid run`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.viewer.conftest import screenshot

# Browser waits: generous, a loaded 2-core machine decodes and renders slowly; speed is measured in bench/viewer.py.
WAIT_MS = 60_000


def open_table(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.viewerState && window.viewerState.tableLoadedAt !== null", timeout=WAIT_MS)


def table_ids(page) -> list[str]:
    return page.eval_on_selector_all("#clips tbody tr", "rows => rows.map(r => r.dataset.id)")


def test_dataset_page_lists_every_clip_with_filtered_ones_marked(page, bikes_viewer, bikes_dataset):
    table = pd.read_parquet(bikes_dataset / "metadata.parquet")
    open_table(page, bikes_viewer.url)
    assert sorted(table_ids(page)) == sorted(table["id"])
    filtered = table[table["filtered_by"] != ""]
    assert len(filtered) >= 1  # the motion floor of the fixture filters one clip out
    for clip_id, rules in zip(filtered["id"], filtered["filtered_by"]):
        row = page.locator(f'#clips tbody tr[data-id="{clip_id}"]')
        assert "status-filtered" in row.get_attribute("class")
        assert rules.split(",")[0] in row.inner_text()
    # Every row's thumbnail is a decoded frame of its clip.
    page.wait_for_function("[...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)",
                           timeout=WAIT_MS)
    screenshot(page, "dataset_bikes")
    assert not page.errors


def test_sorting_and_filtering_run_on_the_server(page, bikes_viewer, bikes_dataset):
    table = pd.read_parquet(bikes_dataset / "metadata.parquet")
    open_table(page, bikes_viewer.url)
    by_motion = list(table.sort_values("motion")["id"])
    header = page.locator('#clips thead th[data-column="motion"]')
    for expected in (by_motion, by_motion[::-1]):
        before = page.evaluate("window.viewerState.tableLoadedAt")
        header.click()
        page.wait_for_function(f"window.viewerState.tableLoadedAt > {before}", timeout=WAIT_MS)
        assert table_ids(page) == expected
    # A numeric filter keeps only the matching clips.
    before = page.evaluate("window.viewerState.tableLoadedAt")
    page.fill('input[data-filter="motion"]', ">5")
    page.wait_for_function(f"window.viewerState.tableLoadedAt > {before}", timeout=WAIT_MS)
    assert sorted(table_ids(page)) == sorted(table[table["motion"] > 5]["id"])


def open_clip(page, url: str, clip_id: str) -> None:
    page.goto(f"{url}#/clip/{clip_id}")
    page.wait_for_function("window.viewerState.clip && window.viewerState.interactiveAt", timeout=WAIT_MS)


def _count_pixels(canvas: str) -> str:
    """JS: the number of painted (non-transparent) pixels on ``canvas``."""
    return f"""const c = document.getElementById('{canvas}');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < data.length; i += 4) if (data[i]) n++;"""


def overlay_pixels(page, canvas: str) -> int:
    return page.evaluate(f"() => {{ {_count_pixels(canvas)} return n; }}")


def wait_for_pixels(page, canvas: str) -> int:
    """The painted pixels on ``canvas`` once there are some, counted in the same look (the video plays on: a
    second look may fall on a frame whose mask is empty)."""
    found = page.wait_for_function(f"() => {{ {_count_pixels(canvas)} return n > 0 ? n : false; }}", timeout=WAIT_MS)
    return int(found.json_value())


def test_clip_page_plays_with_mask_overlay_and_one_frustum_per_frame(page, bikes_viewer, bikes_dataset):
    clip_id = "bikes_0"
    c2w = np.load(bikes_dataset / "annotations" / clip_id / "c2w.npy")
    open_clip(page, bikes_viewer.url, clip_id)
    start = page.evaluate("document.getElementById('video').currentTime")
    page.wait_for_function(f"document.getElementById('video').currentTime > {start} + 0.2", timeout=WAIT_MS)
    assert wait_for_pixels(page, "overlay") > 0
    page.wait_for_function("window.viewerState.scene && window.viewerState.scene.frames > 0", timeout=WAIT_MS)
    assert page.evaluate("window.viewerState.scene.drawnFrustums()") == len(c2w)
    assert page.evaluate("window.viewerState.clip.c2w.length") == len(c2w)
    # The highlighted camera follows the video.
    page.wait_for_function("window.viewerState.scene.highlighted === window.viewerState.row", timeout=WAIT_MS)
    # The toggle takes the overlay away.
    page.click("#mask-toggle")
    page.wait_for_function("""() => { const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i]) return false; return true; }""", timeout=WAIT_MS)
    segments = page.eval_on_selector_all("#timeline .segment", "s => s.map(x => x.dataset.labels)")
    assert segments and "Pan Left" in segments[0]
    page.click("#mask-toggle")
    wait_for_pixels(page, "overlay")
    screenshot(page, "clip_bikes")
    assert not page.errors


def test_case_clip_shows_depth_points_and_frustums(page, case_viewer, case_dataset):
    clip_id = "street_dyn3"
    c2w = np.load(case_dataset / "annotations" / clip_id / "c2w.npy")
    open_clip(page, case_viewer.url, clip_id)
    assert wait_for_pixels(page, "depth") > 0
    page.wait_for_function("window.viewerState.scene && window.viewerState.scene.points > 0", timeout=WAIT_MS)
    assert page.evaluate("window.viewerState.scene.drawnFrustums()") == len(c2w)
    start = page.evaluate("document.getElementById('video').currentTime")
    page.wait_for_function(f"document.getElementById('video').currentTime > {start} + 0.2", timeout=WAIT_MS)
    page.wait_for_timeout(500)
    screenshot(page, "clip_case")
    assert not page.errors


def test_report_in_the_viewer_has_every_plot(page, bikes_viewer):
    page.goto(f"{bikes_viewer.url}#/report")
    frame = page.frame_locator("#report")
    frame.locator("figure.plot").first.wait_for(timeout=WAIT_MS)
    names = frame.locator("figure.plot").evaluate_all("f => f.map(x => x.dataset.plot)")
    for required in ("moveDist", "distLevel", "rotAngle", "dynamicRatio", "duration", "motion",
                     "camera-motion labels (clips)", "filter rules", "stage time (s, total)"):
        assert required in names
    bars = dict(zip(names, frame.locator("figure.plot").evaluate_all("f => f.map(x => +x.dataset.bars)")))
    assert bars["filter rules"] == 1 and bars["motion"] > 0
    screenshot(page, "report_bikes")
    page.goto(f"{bikes_viewer.url}report")
    screenshot(page, "report_bikes_full", full_page=True)
