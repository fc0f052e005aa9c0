"""The dataset viewer of a job, through the gateway: the owner's key opens it, another key gets 404."""

from __future__ import annotations

import httpx
import pytest

from samples import bikes_path
from tests.distributed.conftest import OTHER_KEY
from tests.viewer.conftest import screenshot

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def viewed_job(info):
    from services.client.api import GatewayClient

    with GatewayClient(info.api_url, info.api_key, timeout_s=120) as client:
        accepted = client.submit([bikes_path()], "clip,score,filter,camera", {"clip": {"min_seconds": 1.0}})
        status = client.wait(accepted["id"], poll_s=1.0, timeout_s=900)
        assert status["state"] == "succeeded", status
        clips = client.clips(accepted["id"], limit=1000)["items"]
    return accepted["id"], [c["id"] for c in clips]


def _get(info, path: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(info.api_url + path, headers=headers, timeout=60)


def test_owner_sees_the_viewer_and_another_key_gets_404(info, viewed_job):
    job_id, clip_ids = viewed_job
    base = f"/v1/jobs/{job_id}/view"
    page = _get(info, base, info.api_key)
    assert page.status_code == 200 and f'<base href="{base}/">' in page.text
    table = _get(info, f"{base}/api/clips?limit=500", info.api_key).json()
    assert sorted(r["id"] for r in table["rows"]) == sorted(clip_ids)
    clip = _get(info, f"{base}/api/clips/{clip_ids[0]}", info.api_key).json()
    assert clip["video_url"].startswith("http") and "X-Amz-Signature" in clip["video_url"]
    assert len(clip["c2w"]) == clip["num_frames"]
    for path in ("", "/", "/api/dataset", "/api/clips", f"/api/clips/{clip_ids[0]}",
                 f"/api/clips/{clip_ids[0]}/thumb.jpg", "/report", "/static/app.js"):
        assert _get(info, base + path, OTHER_KEY).status_code == 404, path
        assert _get(info, base + path, None).status_code == 401, path
    # A made-up job is a 404 for the owner's key too.
    assert _get(info, "/v1/jobs/0123456789abcdef/view", info.api_key).status_code == 404


def test_the_viewer_works_in_a_browser_through_the_gateway(info, viewed_job):
    from services.viewer.headless import browser

    job_id, clip_ids = viewed_job
    url = f"{info.api_url}/v1/jobs/{job_id}/view"
    with browser() as b:
        context = b.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        # Without a key the page is the key form; posting the owner's key sets the view cookie.
        page.goto(url)
        page.fill("input[name=key]", info.api_key)
        page.click("button")
        page.wait_for_function("window.viewerState && window.viewerState.tableLoadedAt !== null", timeout=WAIT_MS)
        ids = page.eval_on_selector_all("#clips tbody tr", "rows => rows.map(r => r.dataset.id)")
        assert sorted(ids) == sorted(clip_ids)
        page.goto(f"{url}/#/clip/{clip_ids[0]}")
        page.wait_for_function("window.viewerState.clip && window.viewerState.interactiveAt", timeout=WAIT_MS)
        start = page.evaluate("document.getElementById('video').currentTime")
        page.wait_for_function(f"document.getElementById('video').currentTime > {start} + 0.2", timeout=WAIT_MS)
        page.wait_for_function("window.viewerState.scene && window.viewerState.scene.frames > 0", timeout=WAIT_MS)
        assert page.evaluate("window.viewerState.scene.drawnFrustums()") == page.evaluate(
            "window.viewerState.clip.c2w.length") > 0
        screenshot(page, "gateway_clip")
        # The cookie belongs to this job's view only: another key's cookie would not open it either.
        context.clear_cookies()
        other = b.new_context()
        other.add_cookies([{"name": "spatialvid_view_key", "value": OTHER_KEY, "url": url + "/"}])
        assert other.request.get(url + "/api/dataset").status == 404
        other.close()
        context.close()
