"""The chat-completions client against a scripted local server."""

from __future__ import annotations

import json
import logging
import random
import threading

import pytest

from services.caption.client import ChatClient, ChatError
from services.retry import backoff_delay
from services.caption.ratelimit import RateLimiter
from services.caption.schema import StructuredCaption, VisionCaption
from tests.caption.conftest import API_KEY, Reply, answer
from tests.caption.samples import STRUCTURED, VISION

MESSAGES = [{"role": "user", "content": "describe"}]


def make_client(server, settings, sleeps=None) -> ChatClient:
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return ChatClient(server.url, settings.llm_model, settings.api_key, settings, sleep=sleep,
                      rng=random.Random(0))


def test_good_answer(chat_server, fast_settings):
    chat_server.script = [answer(STRUCTURED)]
    client = make_client(chat_server, fast_settings(chat_server.url))
    result = client.complete_json(MESSAGES, StructuredCaption, temperature=0.1)
    assert result.CategoryTag.sceneType.first == "Interior"
    assert result.MotionTrends == ["forward translate", "left pan"]
    (request,) = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    body = request["body"]
    assert body["model"] == "test-llm" and body["temperature"] == 0.1
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]["schema"]
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)
    assert set(schema["required"]) >= {"OptCamMotion", "CategoryTag"}


def test_invalid_json_then_good(chat_server, fast_settings):
    chat_server.script = [answer("Sure! Here is the caption: {CamMotion: pans"), answer(VISION)]
    client = make_client(chat_server, fast_settings(chat_server.url))
    result = client.complete_json(MESSAGES, VisionCaption, temperature=0.2)
    assert result.CamMotion.startswith("The camera pushes")
    assert len(chat_server.requests) == 2
    retry = chat_server.requests[1]["body"]["messages"]
    assert retry[-2]["role"] == "assistant" and "Sure!" in retry[-2]["content"]
    assert "cannot be used" in retry[-1]["content"]


def test_schema_violation_then_good(chat_server, fast_settings):
    wrong = dict(STRUCTURED, CategoryTag=dict(STRUCTURED["CategoryTag"], weather="Hailstorm"))
    chat_server.script = [answer(wrong), answer(STRUCTURED)]
    client = make_client(chat_server, fast_settings(chat_server.url))
    client.complete_json(MESSAGES, StructuredCaption, temperature=0.1)
    assert "CategoryTag.weather" in chat_server.requests[1]["body"]["messages"][-1]["content"]


def test_fenced_answer_is_repaired_without_asking_again(chat_server, fast_settings):
    text = "```json\n" + json.dumps(VISION)[:-1] + ",}\n```"  # fence and a trailing comma
    chat_server.script = [answer(text)]
    client = make_client(chat_server, fast_settings(chat_server.url))
    assert client.complete_json(MESSAGES, VisionCaption, 0.2).SceneDesc.startswith("A bright")
    assert len(chat_server.requests) == 1


def test_never_valid_json_fails(chat_server, fast_settings):
    chat_server.script = [answer("no json here")]
    client = make_client(chat_server, fast_settings(chat_server.url, json_attempts=2))
    with pytest.raises(ChatError, match="no valid JSON after 2 answers"):
        client.complete_json(MESSAGES, VisionCaption, 0.2)
    assert len(chat_server.requests) == 2


def test_429_then_success_backs_off(chat_server, fast_settings):
    chat_server.script = [Reply(status=429, body='{"error": "slow down"}', headers={"Retry-After": "0.02"}),
                          answer(VISION)]
    sleeps: list[float] = []
    client = make_client(chat_server, fast_settings(chat_server.url), sleeps)
    assert client.complete_json(MESSAGES, VisionCaption, 0.2).CamMotion
    assert len(chat_server.requests) == 2
    assert len(sleeps) == 1 and 0.02 <= sleeps[0] <= 0.05  # Retry-After honoured, under the cap


def test_timeout_then_success(chat_server, fast_settings):
    chat_server.script = [Reply(content=json.dumps(VISION), delay=1.0), answer(VISION)]
    client = make_client(chat_server, fast_settings(chat_server.url, timeout_s=0.2))
    assert client.complete_json(MESSAGES, VisionCaption, 0.2).CamMotion
    assert len(chat_server.requests) == 2


def test_timeout_forever_gives_up(chat_server, fast_settings):
    chat_server.script = [Reply(content=json.dumps(VISION), delay=0.6)]
    client = make_client(chat_server, fast_settings(chat_server.url, timeout_s=0.15, max_retries=1))
    with pytest.raises(ChatError, match=r"timed out.*after 2 attempts") as info:
        client.complete(MESSAGES, 0.2)
    assert info.value.retryable


def test_500_forever_gives_up_without_leaking_the_key(chat_server, fast_settings, caplog):
    caplog.set_level(logging.DEBUG)
    # A server that echoes the key back in its error must not get it into our messages.
    chat_server.script = [Reply(status=500, body=f'{{"error": "boom, key {API_KEY}"}}')]
    sleeps: list[float] = []
    client = make_client(chat_server, fast_settings(chat_server.url, max_retries=3), sleeps)
    with pytest.raises(ChatError, match="HTTP 500.*after 4 attempts") as info:
        client.complete(MESSAGES, 0.2)
    assert len(chat_server.requests) == 4 and len(sleeps) == 3
    assert API_KEY not in str(info.value) and "***" in str(info.value)
    assert API_KEY not in caplog.text and API_KEY not in repr(client)
    assert "retry 1/3" in caplog.text


def test_client_error_is_not_retried(chat_server, fast_settings):
    chat_server.script = [Reply(status=401, body='{"error": "bad key"}')]
    client = make_client(chat_server, fast_settings(chat_server.url))
    with pytest.raises(ChatError, match="HTTP 401") as info:
        client.complete(MESSAGES, 0.2)
    assert not info.value.retryable and len(chat_server.requests) == 1


def test_unsupported_response_format_steps_down(chat_server, fast_settings):
    def reply(body):
        if body.get("response_format", {}).get("type") == "json_schema":
            return Reply(status=400, body='{"error": "response_format json_schema is not supported"}')
        return answer(VISION)

    chat_server.script = [reply]
    client = make_client(chat_server, fast_settings(chat_server.url))
    assert client.complete_json(MESSAGES, VisionCaption, 0.2).CamMotion
    formats = [r["body"].get("response_format", {}).get("type") for r in chat_server.requests]
    assert formats == ["json_schema", "json_object"]
    assert client.json_mode == "json_object"  # remembered for later calls


def test_concurrency_limit_holds(chat_server, fast_settings):
    chat_server.script = [Reply(content=json.dumps(VISION), delay=0.15)]
    client = make_client(chat_server, fast_settings(chat_server.url, max_concurrency=2))
    threads = [threading.Thread(target=client.complete, args=(MESSAGES, 0.2)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(chat_server.requests) == 6
    assert chat_server.max_in_flight == 2


def test_rate_limiter_spaces_requests():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(per_minute=120, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    # 120/min = one request every 0.5 s; the first is free.
    assert now[0] == pytest.approx(2.0)
    assert RateLimiter(per_minute=0).acquire() == 0.0


def test_backoff_grows_with_jitter_and_cap():
    rng = random.Random(1)
    delays = [backoff_delay(a, base=1.0, cap=30.0, rng=rng) for a in range(8)]
    for attempt, delay in enumerate(delays):
        step = min(30.0, 2.0**attempt)
        assert step / 2 <= delay <= step
    assert backoff_delay(0, 1.0, 30.0, rng, retry_after=7.0) == 7.0
    assert backoff_delay(0, 1.0, 5.0, rng, retry_after=60.0) == 5.0
    assert len({round(backoff_delay(3, 1.0, 30.0, rng), 6) for _ in range(10)}) > 1  # jittered
