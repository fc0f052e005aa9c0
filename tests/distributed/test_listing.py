"""A job over an S3 prefix or a manifest: inputs listed page by page, each once, against the real stack."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from minio import Minio

from services.listing import ListingSpec, read_page
from services.client.api import ApiFailure
from workers import state as st

from .conftest import GRANTED_PREFIX, LISTING_PAGE_SIZE

# The videos a listing job reads lie under the prefix the operator granted to the development key.
LIBRARY = f"{GRANTED_PREFIX}library/"


@pytest.fixture(scope="module")
def minio(info, stack_settings) -> Minio:
    s3 = stack_settings.s3
    return Minio(info.s3_endpoint, access_key=s3.access_key, secret_key=s3.secret_key.get_secret_value(),
                 secure=False, region=s3.region)


def _put(minio: Minio, bucket: str, key: str, data: bytes) -> str:
    minio.put_object(bucket, key, io.BytesIO(data), len(data))
    return f"s3://{bucket}/{key}"


def _pages(minio: Minio, spec: ListingSpec, size: int) -> list[list[str]]:
    pages, cursor = [], ""
    while True:
        page = read_page(minio, spec, cursor, size)
        pages.append(page.uris)
        if not page.cursor:
            return pages
        assert page.cursor != cursor, "the cursor must move on"
        cursor = page.cursor


def test_a_prefix_of_thousands_of_keys_is_read_in_pages_each_key_once(minio, info):
    keys = [f"listing-prefix/{i:05d}.mp4" for i in range(1205)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: _put(minio, info.bucket, k, b"x"), keys))
    _put(minio, info.bucket, "listing-prefix/notes.txt", b"not a video")  # skipped, like a folder's non-videos
    pages = _pages(minio, ListingSpec("prefix", f"s3://{info.bucket}/listing-prefix/"), 500)
    assert [len(p) for p in pages] == [500, 500, 205]
    assert [u for p in pages for u in p] == [f"s3://{info.bucket}/{k}" for k in keys]


def test_a_manifest_of_thousands_of_lines_is_read_in_pages_each_line_once(minio, info):
    uris = [f"s3://{info.bucket}/videos/{i}.mp4" for i in range(2500)] + ["https://example.com/a b.mp4"]
    text = "# made by the test\n\n" + "\n".join(uris[:1000]) + "\n   \n" + "\n".join(uris[1000:])  # no final newline
    spec = ListingSpec("manifest", _put(minio, info.bucket, "listing/manifest.txt", text.encode()))
    pages = _pages(minio, spec, 1000)
    assert [len(p) for p in pages] == [1000, 1000, 501]
    assert [u for p in pages for u in p] == uris


def _video(path: Path, source: str) -> bytes:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size=160x120:rate=10", "-t", "4",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def library(minio, info, tmp_path_factory) -> list[str]:
    """Three distinct short videos under one prefix (one shot each), and a file that is not a video."""
    folder = tmp_path_factory.mktemp("library")
    uris = [_put(minio, info.bucket, f"{LIBRARY}{name}.mp4", _video(folder / f"{name}.mp4", name))
            for name in ("testsrc", "smptebars", "rgbtestsrc")]
    _put(minio, info.bucket, f"{LIBRARY}readme.txt", b"three test patterns")
    # The same videos outside the key's grant: a listing that names them must not take them.
    _put(minio, info.bucket, "private/testsrc.mp4", _video(folder / "private.mp4", "testsrc"))
    return uris


def test_a_job_over_a_prefix_ingests_every_video_below_it(client, info, library, redis_client):
    assert len(library) > LISTING_PAGE_SIZE  # more than one page
    accepted = client.submit_listing(prefix=f"s3://{info.bucket}/{LIBRARY}", stages="clip",
                                     config={"clip": {"min_seconds": 1.0}})
    status = client.wait(accepted["id"], poll_s=0.5, timeout_s=600)
    assert status["state"] == "succeeded", status
    assert status["videos_total"] == status["videos_clipped"] == 3
    assert sorted(v["source"] for v in status["videos"]) == sorted(library)
    assert status["clips_total"] == 3 and status["clips_finished"] == 3
    pages = redis_client.hlen(st.Keys(accepted["id"]).pages)
    assert pages == 2  # 3 videos at 2 per page


def test_a_manifest_job_fails_only_the_lines_it_cannot_take(client, info, library, minio):
    lines = ["# the library, plus three lines that cannot be taken", *library,
             f"s3://{info.bucket}/{LIBRARY}missing.mp4",  # no such object
             f"s3://{info.bucket}/private/testsrc.mp4",  # exists, but outside the key's grant
             f"s3://{info.bucket}/uploads/someone/else.mp4",  # another job's files
             "ftp://example.com/video.mp4"]
    manifest = _put(minio, info.bucket, f"{GRANTED_PREFIX}library-manifest.txt", "\n".join(lines).encode())
    accepted = client.submit_listing(manifest=manifest, stages="clip", config={"clip": {"min_seconds": 1.0}})
    status = client.wait(accepted["id"], poll_s=0.5, timeout_s=600)
    assert status["state"] == "partially_failed", status
    assert status["videos_total"] == 7 and status["clips_total"] == 3
    errors = status["errors"]
    assert set(errors) == set(lines[-4:]), errors
    assert "outside what this job's API key may read" in errors[lines[-3]]
    assert "job files" in errors[lines[-2]] and "neither" in errors[lines[-1]]


def test_a_listing_is_checked_when_submitted(client, other_client, info, library):
    with pytest.raises(ApiFailure) as missing:
        client.submit_listing(prefix=f"s3://{info.bucket}/{GRANTED_PREFIX}no-such-prefix/")
    assert missing.value.status == 400 and missing.value.code == "source_not_found"
    with pytest.raises(ApiFailure) as absent:
        client.submit_listing(manifest=f"s3://{info.bucket}/{GRANTED_PREFIX}no-such-manifest.txt")
    assert absent.value.code == "source_not_found"
    with pytest.raises(ApiFailure) as others:
        other_client.submit_listing(prefix=f"s3://{info.bucket}/jobs/")
    assert others.value.status == 403 and others.value.code == "source_forbidden"
    # Outside the grant, a prefix or manifest is refused before it is looked at: the same answer
    # whether it exists (private/) or not.
    for kind, uri in (("prefix", f"s3://{info.bucket}/private/"), ("prefix", f"s3://{info.bucket}/nothing-here/"),
                      ("manifest", f"s3://{info.bucket}/private/testsrc.mp4"), ("prefix", f"s3://{info.bucket}/")):
        with pytest.raises(ApiFailure) as outside:
            client.submit_listing(**{kind: uri})
        assert outside.value.status == 403 and outside.value.code == "source_forbidden", (kind, uri)


def test_an_empty_prefix_or_manifest_is_a_bad_request_not_a_server_error(client):
    for kind in ("prefix", "manifest"):
        with pytest.raises(ApiFailure) as empty:
            client.submit_listing(**{kind: ""})
        assert empty.value.status == 422, kind
