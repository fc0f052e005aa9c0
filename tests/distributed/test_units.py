"""The distributed mode's pure pieces, without servers."""

from __future__ import annotations

import threading
import time

from gateway.auth import KeyRing, hash_key, new_key
from gateway.sniff import HEAD_BYTES, container_of
from gateway.uploads import UploadPipe
from samples import bikes_path, vtest_path
from services.settings import load_settings
from services.stack import settings_env
from services.stages.registry import STAGES
from workers.lease import UNACKED_INDEX, _Renewer
from workers.routing import ANNOTATE_TASK, CLIP_STAGES, QUEUE_NAMES, QUEUES, next_task, stage_task, task_routes


def test_sniffing_knows_real_containers_and_refuses_text():
    assert container_of(bikes_path().read_bytes()[:HEAD_BYTES]) == "mp4/mov"
    assert container_of(vtest_path().read_bytes()[:HEAD_BYTES]) == "avi"
    assert container_of(b"GIF89a" + bytes(200)) is None
    assert container_of(b"G" + b"not a transport stream" * 10) is None
    assert container_of(b"hello, world\n" * 20) is None


def test_keys_are_checked_against_hashes_only():
    key, other = new_key(), new_key()
    ring = KeyRing({"alice": hash_key(key)})
    assert ring.owner(key) == "alice"
    assert ring.owner(other) is None and ring.owner("") is None
    assert key not in hash_key(key)


def test_upload_pipe_hands_whole_parts_and_surfaces_errors():
    pipe = UploadPipe(depth=2)

    def feed():
        for i in range(7):
            pipe.put(bytes([i]) * 300)
        pipe.put(None)

    threading.Thread(target=feed).start()
    sizes = []
    while chunk := pipe.read(1000):
        sizes.append(len(chunk))
    assert sizes == [1000, 1000, 100]

    failing = UploadPipe()
    failing.put(ValueError("client went away"))
    try:
        failing.read(10)
    except ValueError as exc:
        assert "went away" in str(exc)
    else:
        raise AssertionError("the error did not reach the reader")


def test_every_stage_has_a_queue_and_a_route():
    assert {"ingest", "score", "annotate_camera", "annotate_depth", "caption", "finalize"} <= set(QUEUE_NAMES)
    routes = task_routes()
    assert set(STAGES) <= set(QUEUES)
    for stage in CLIP_STAGES:
        assert routes[stage_task(stage)]["queue"] == QUEUES[stage]


def test_camera_and_depth_go_to_the_annotate_task_only_together_and_when_set():
    stages = ["score", "filter", "camera", "depth", "caption"]
    assert next_task(stages, "camera", True) == (ANNOTATE_TASK, QUEUES["annotate"])
    assert task_routes()[ANNOTATE_TASK]["queue"] == QUEUES["annotate"] in QUEUE_NAMES
    assert next_task(stages, "camera", False) == (stage_task("camera"), QUEUES["camera"])
    assert next_task(["camera", "caption"], "camera", True) == (stage_task("camera"), QUEUES["camera"])
    assert next_task(["depth", "caption"], "depth", True) == (stage_task("depth"), QUEUES["depth"])
    assert next_task(stages, "caption", True) == (stage_task("caption"), QUEUES["caption"])


def test_settings_travel_to_child_processes_as_environment():
    settings = load_settings().with_overrides({"clip": {"min_seconds": 1.5}, "gateway": {"api_keys": {"a": "sha256:x"}}})
    env = settings_env(settings)
    assert env["SPATIALVID_CLIP__MIN_SECONDS"] == "1.5"
    assert env["SPATIALVID_GATEWAY__API_KEYS"] == '{"a": "sha256:x"}'
    assert env["SPATIALVID_S3__SECRET_KEY"] == settings.s3.secret_key.get_secret_value()


class _UnackedIndex:
    """Stands in for the broker's Redis: records each lease renewal (kombu's unacked index, only where present)."""

    def __init__(self) -> None:
        self.renewed: list[str] = []

    def zadd(self, key, mapping, xx=False):
        assert key == UNACKED_INDEX and xx, "a renewal must never re-add an acknowledged message"
        self.renewed.extend(mapping)


def _wait_for(condition, limit_s: float = 60.0) -> bool:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_message_lease_renews_held_messages_only_and_wakes_its_thread_only_when_it_would_look_too_late():
    client = _UnackedIndex()
    renewer = _Renewer()
    told = []
    notify = renewer._changed.notify
    renewer._changed.notify = lambda n=1: (told.append(n), notify(n))
    # Short tasks one after another, as a worker runs them: the renewer thread, which waited for its first
    # lease, is told once; after that it looks by itself every period, early enough for any lease of that period.
    for i in range(50):
        renewer.hold(f"short-{i}", client, 0.2)
        renewer.release(f"short-{i}")
    assert len(told) == 1
    # A task that runs for several periods keeps its message hidden...
    renewer.hold("long", client, 0.1)
    assert _wait_for(lambda: client.renewed.count("long") >= 3), "a held lease was not renewed"
    renewer.release("long")
    # ...and once it is released (acknowledged), its message is no longer renewed, nor any short task's.
    time.sleep(0.5)  # a renewal already under way when it was released may still land
    settled = list(client.renewed)
    time.sleep(0.5)
    assert client.renewed == settled
    assert set(settled) <= {"long"} | {f"short-{i}" for i in range(50)}
