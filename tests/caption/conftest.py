"""A local server that speaks the chat-completions protocol, scripted per request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services.settings import CaptionSettings

API_KEY = "sk-test-5ecret-never-show-this"


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant's text (status 200)
    body: str = ""  # raw body for other statuses
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def answer(content: str | dict) -> Reply:
    return Reply(content=content if isinstance(content, str) else json.dumps(content))


class ChatServer:
    """Replies come from ``script`` in order; the last one repeats forever."""

    def __init__(self) -> None:
        self.script: list[Reply | Callable[[dict], Reply]] = [answer("{}")]
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    index = len(server.requests)
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    step = server.script[min(index, len(server.script) - 1)]
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    reply = step(body) if callable(step) else step
                    if reply.delay:
                        time.sleep(reply.delay)
                    if reply.status == 200 and reply.content is not None:
                        payload = {
                            "id": f"chatcmpl-{index}",
                            "object": "chat.completion",
                            "model": body.get("model"),
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": reply.content}}],
                        }
                        data = json.dumps(payload).encode()
                    else:
                        data = reply.body.encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture
def fast_settings() -> Callable[..., CaptionSettings]:
    """Caption settings with test-sized timeouts and backoff."""

    def make(url: str, **overrides: Any) -> CaptionSettings:
        values: dict[str, Any] = dict(
            backend="openai", vlm_url=url, vlm_model="test-vlm", llm_url=url, llm_model="test-llm",
            api_key=API_KEY, timeout_s=2.0, connect_timeout_s=1.0, max_retries=2,
            backoff_base_s=0.01, backoff_max_s=0.05, requests_per_minute=0,
        )
        values.update(overrides)
        return CaptionSettings(**values)

    return make
