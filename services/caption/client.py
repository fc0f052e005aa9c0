"""A client for OpenAI-compatible chat-completions endpoints (vLLM, Ollama, Gemini, Qwen).

What the reference lacked: timeouts, retries with exponential backoff and
jitter on timeouts, connection errors, 429 and 5xx (honouring Retry-After), a
limit on requests in flight, a rate limit, and answers that must be JSON for a
schema (JSON mode or schema where the server has it; otherwise repaired, else
asked again). The API key goes only into the Authorization header: it is
never logged, never put in an error message, and never written anywhere.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr

from services.caption.jsonfix import InvalidAnswer, parse_answer
from services.caption.ratelimit import RateLimiter
from services.caption.schema import inline_json_schema
from services.retry import backoff_delay
from services.settings import CaptionSettings

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

# Response formats from the strictest down; a server that rejects one gets the next.
_JSON_MODES = ("json_schema", "json_object", "none")


class ChatError(RuntimeError):
    """A request that failed for good (after retries, or at once when retrying cannot help)."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass
class EndpointLimits:
    """Shared by every client of one endpoint: requests in flight and requests per minute."""

    max_concurrency: int
    requests_per_minute: float
    semaphore: threading.BoundedSemaphore = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = threading.BoundedSemaphore(self.max_concurrency)
        self.limiter = RateLimiter(self.requests_per_minute, burst=self.max_concurrency)

    @classmethod
    def from_settings(cls, settings: CaptionSettings) -> "EndpointLimits":
        return cls(settings.max_concurrency, settings.requests_per_minute)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; the exponential backoff covers it


def _content(payload: Any) -> str:
    """The assistant's text from a chat-completions response body."""
    try:
        message = payload["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        raise ChatError("the response has no choices[0].message") from None
    content = message.get("content")
    if isinstance(content, list):  # some servers return content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if not isinstance(content, str) or not content.strip():
        raise ChatError("the response message is empty", retryable=True)
    return content


class ChatClient:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None,
        settings: CaptionSettings,
        limits: EndpointLimits | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not model:
            raise ValueError(f"no model name configured for {base_url}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.settings = settings
        self.limits = limits or EndpointLimits.from_settings(settings)
        self.json_mode = settings.json_mode
        self._key = api_key
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._http = httpx.Client(
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # never shows the key
        return f"ChatClient(url={self.url!r}, model={self.model!r})"

    def close(self) -> None:
        self._http.close()

    # -- one request, with retries ------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key is not None and self._key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return headers

    def _redact(self, text: str) -> str:
        secret = self._key.get_secret_value() if self._key is not None else ""
        return text.replace(secret, "***") if secret else text

    def _send_once(self, body: dict[str, Any]) -> tuple[str | None, ChatError | None, float | None]:
        """One POST: (content, None, None) on success, else (None, error, retry_after)."""
        self.limits.limiter.acquire()
        with self.limits.semaphore:
            try:
                response = self._http.post(self.url, json=body, headers=self._headers())
            except httpx.TimeoutException as exc:
                return None, ChatError(f"timed out ({type(exc).__name__})", retryable=True), None
            except httpx.TransportError as exc:
                return None, ChatError(f"connection failed ({type(exc).__name__})", retryable=True), None
        status = response.status_code
        if 200 <= status < 300:
            try:
                return _content(response.json()), None, None
            except ValueError:
                return None, ChatError("the response body is not JSON", status, retryable=True), None
            except ChatError as exc:
                return None, exc, None
        detail = self._redact(response.text[:300].strip())
        retryable = status == 429 or status >= 500
        return None, ChatError(f"HTTP {status}: {detail}", status, retryable), _retry_after(response)

    def complete(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> str:
        """The assistant's text for these messages; ChatError once retries are spent."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens or self.settings.max_tokens,
        }
        if response_format is not None:
            body["response_format"] = response_format
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            content, error, retry_after = self._send_once(body)
            if error is None:
                return content
            if not error.retryable or attempt == attempts - 1:
                suffix = f" (after {attempt + 1} attempts)" if error.retryable else ""
                raise ChatError(f"{self.model} at {self.url}: {error}{suffix}", error.status, error.retryable)
            delay = backoff_delay(
                attempt, self.settings.backoff_base_s, self.settings.backoff_max_s, self._rng, retry_after
            )
            log.warning("chat request to %s failed (%s); retry %d/%d in %.2fs",
                        self.url, error, attempt + 1, attempts - 1, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")

    # -- JSON answers --------------------------------------------------------
    def _response_format(self, model: type[BaseModel]) -> dict[str, Any] | None:
        if self.json_mode == "json_schema":
            schema = inline_json_schema(model)
            return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema}}
        if self.json_mode == "json_object":
            return {"type": "json_object"}
        return None

    def _complete_formatted(self, messages: list[dict[str, Any]], model: type[BaseModel], temperature: float) -> str:
        """complete() with the strictest response format the server accepts."""
        while True:
            try:
                return self.complete(messages, temperature, response_format=self._response_format(model))
            except ChatError as exc:
                # A 400/422 with a response format may mean "not supported here": step down once per mode.
                if exc.status in (400, 422) and self.json_mode != "none":
                    following = _JSON_MODES[_JSON_MODES.index(self.json_mode) + 1]
                    log.warning("%s rejected response_format %s; trying %s", self.url, self.json_mode, following)
                    self.json_mode = following
                    continue
                raise

    def complete_json(self, messages: list[dict[str, Any]], model: type[M], temperature: float) -> M:
        """A validated ``model`` instance; an unusable answer is repaired, else asked for again."""
        conversation = list(messages)
        problem = ""
        for _ in range(self.settings.json_attempts):
            text = self._complete_formatted(conversation, model, temperature)
            try:
                return parse_answer(text, model)
            except InvalidAnswer as exc:
                problem = str(exc)
                log.warning("%s gave an unusable answer (%s); asking again", self.model, problem)
                conversation = [
                    *messages,
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": f"That answer cannot be used: {problem}. "
                     "Reply with only the corrected JSON object, nothing else."},
                ]
        raise ChatError(f"{self.model}: no valid JSON after {self.settings.json_attempts} answers ({problem})")
