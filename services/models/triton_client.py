"""The Triton side of the model-client seam: ``infer(inputs) -> outputs`` on a remote model.

Same contract as the in-process client (a dict of named arrays whose first axis
is the batch in, a dict of named arrays out), so a stage never knows where its
model runs. What this client adds:

- it waits (up to ``triton.ready_timeout_s``) for the server and the model to be
  ready when it is made, and says at once why when the model failed to load
  (e.g. its weights are missing) instead of waiting for nothing;
- it splits a large batch into requests of at most ``triton.max_batch_size``
  (and the model's own max_batch_size) and keeps up to ``triton.max_inflight``
  of them in flight; the server's dynamic batcher merges requests from
  concurrent callers;
- it retries when the server is unreachable or answers "unavailable", with
  exponential backoff and jitter; any other error is the model's own and is
  raised as ``ClipFailed`` carrying the model's message.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from services.retry import backoff_delay
from services.models.params import TritonSettings
from services.stages.base import ClipFailed

log = logging.getLogger(__name__)
_announced: set[tuple[str, str]] = set()  # (model, url) already logged by this process

# Server answers that mean "try again later", not "this input is bad".
_RETRY_STATUSES = {"503", "StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.RESOURCE_EXHAUSTED"}


class ModelUnavailable(RuntimeError):
    """The server or the model is not there to serve (not reachable, not loaded); the message says why."""


class TritonModelClient:
    """Calls one model on a Triton server by HTTP or gRPC (the triton section's ``protocol``)."""

    def __init__(self, model: str, settings: TritonSettings, *, wait: bool = True) -> None:
        from tritonclient.utils import InferenceServerException, np_to_triton_dtype

        self.model = self.name = model
        self.settings = settings
        self._error_type = InferenceServerException
        self._to_triton_dtype = np_to_triton_dtype
        if self.settings.protocol == "grpc":
            import tritonclient.grpc as module

            self.url = self.settings.grpc_url
        else:
            import tritonclient.http as module

            self.url = self.settings.url
        self._module = module
        # tritonclient's clients are not shared across threads: one per thread.
        self._local = threading.local()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.max_batch_size = self.settings.max_batch_size
        self.output_names: list[str] = []
        self.per_item = False
        self.version = ""
        if wait:
            self.wait_ready()
        if (model, self.url) not in _announced:  # the worker's log says where each model runs
            _announced.add((model, self.url))
            log.info("model %s runs on Triton (%s://%s)", model, self.settings.protocol, self.url)

    @property
    def backend(self) -> str:
        return f"Triton model {self.model} v{self.version or '?'} ({self.settings.protocol}://{self.url})"

    # -- readiness -----------------------------------------------------------------

    def ready(self) -> bool:
        """Whether the model answers now (no waiting)."""
        try:
            return bool(self._client().is_model_ready(self.model))
        except (OSError, self._error_type):
            return False

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Block until the server and this model are ready; raise ModelUnavailable with the reason otherwise."""
        timeout_s = self.settings.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while True:
            try:
                client = self._client()
                if client.is_server_ready():
                    if client.is_model_ready(self.model):
                        self._read_config(client)
                        return
                    state, reason = self._repository_state(client)
                    if state == "UNAVAILABLE":
                        raise ModelUnavailable(
                            f"Triton model {self.model} is unavailable at {self.url}: {reason or 'failed to load'}"
                        )
                    if state is None:
                        raise ModelUnavailable(f"Triton server at {self.url} has no model named {self.model}")
                    if state == "":
                        raise ModelUnavailable(
                            f"Triton model {self.model} is not loaded at {self.url} (not in the server's triton.models)"
                        )
                    last = f"model {self.model} is {state}"
                else:
                    last = "server not ready"
            except ModelUnavailable:
                raise
            except (OSError, self._error_type) as exc:
                last = f"{type(exc).__name__}: {exc}"
                self._local.__dict__.clear()  # reconnect next time
            if time.monotonic() >= deadline:
                raise ModelUnavailable(f"Triton model {self.model} not ready at {self.url} after {timeout_s:.0f} s ({last})")
            time.sleep(0.25)

    def _repository_state(self, client: Any) -> tuple[str | None, str]:
        if self.settings.protocol == "grpc":
            rows = [
                {"name": m.name, "state": m.state, "reason": m.reason}
                for m in client.get_model_repository_index().models
            ]
        else:
            rows = client.get_model_repository_index()
        for row in rows:
            if row.get("name") == self.model:
                return row.get("state") or "", row.get("reason", "")
        return None, ""

    def _read_config(self, client: Any) -> None:
        if self.settings.protocol == "grpc":
            config = client.get_model_config(self.model, as_json=True)["config"]
            meta = client.get_model_metadata(self.model, as_json=True)
        else:
            config = client.get_model_config(self.model)
            meta = client.get_model_metadata(self.model)
        model_max = int(config.get("max_batch_size", 0) or 0)
        if model_max > 0:
            self.max_batch_size = min(self.settings.max_batch_size, model_max)
        self.output_names = [o["name"] for o in config.get("output", [])]
        params = config.get("parameters", {}) or {}
        # The model's own contract has no batch axis (one item per call): add and remove it here.
        self.per_item = str((params.get("per_item") or {}).get("string_value", "")).lower() == "true"
        self.version = str((meta.get("versions") or [""])[-1])

    # -- inference -----------------------------------------------------------------

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on a batch (first axis of every input); outputs concatenated in order."""
        if not inputs:
            raise ValueError("infer needs at least one input")
        if self.per_item:
            outputs = self._infer_with_retry({k: np.asarray(v)[None] for k, v in inputs.items()})
            return {k: v[0] for k, v in outputs.items()}
        sizes = {len(a) for a in inputs.values()}
        if len(sizes) != 1:
            raise ValueError(f"inputs disagree on the batch size: { {k: len(v) for k, v in inputs.items()} }")
        total = sizes.pop()
        step = self.max_batch_size
        chunks = [{k: v[i : i + step] for k, v in inputs.items()} for i in range(0, total, step)]
        if len(chunks) <= 1 or self.settings.max_inflight == 1:
            results = [self._infer_with_retry(c) for c in chunks]
        else:
            results = list(self._executor().map(self._infer_with_retry, chunks))
        if not results:
            return {}
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.settings.max_inflight, thread_name_prefix=f"triton-{self.model}")
            return self._pool

    def _infer_with_retry(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        attempt = 0
        while True:
            try:
                return self._infer_once(inputs)
            except (OSError, self._error_type) as exc:
                if not self._retriable(exc):
                    message = exc.message() if isinstance(exc, self._error_type) else str(exc)
                    raise ClipFailed(f"Triton model {self.model} failed: {message}") from exc
                if attempt >= self.settings.max_retries:
                    raise ClipFailed(
                        f"Triton model {self.model} unavailable at {self.url} after {attempt + 1} attempts: {exc}"
                    ) from exc
                self._local.__dict__.clear()
                time.sleep(backoff_delay(attempt, self.settings.backoff_base_s, self.settings.backoff_max_s))
                attempt += 1

    def _retriable(self, exc: Exception) -> bool:
        if isinstance(exc, OSError):  # refused, reset, timed out: the server is not (yet) there
            return True
        status = str(exc.status() or "")
        return status in _RETRY_STATUSES

    def _infer_once(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        module = self._module
        tensors = []
        for name, array in inputs.items():
            array = np.ascontiguousarray(array)
            tensor = module.InferInput(name, list(array.shape), self._to_triton_dtype(array.dtype))
            if self.settings.protocol == "grpc":
                tensor.set_data_from_numpy(array)
            else:
                tensor.set_data_from_numpy(array, binary_data=True)
            tensors.append(tensor)
        if self.settings.protocol == "grpc":
            outputs = [module.InferRequestedOutput(n) for n in self.output_names]
            result = self._client().infer(
                self.model, tensors, outputs=outputs or None, client_timeout=self.settings.request_timeout_s
            )
        else:
            outputs = [module.InferRequestedOutput(n, binary_data=True) for n in self.output_names]
            result = self._client().infer(self.model, tensors, outputs=outputs or None)
        return {name: result.as_numpy(name) for name in self.output_names or self._response_names(result)}

    def _response_names(self, result: Any) -> list[str]:
        kwargs = {"as_json": True} if self.settings.protocol == "grpc" else {}
        return [o["name"] for o in result.get_response(**kwargs)["outputs"]]

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            if self.settings.protocol == "grpc":
                client = self._module.InferenceServerClient(self.url)
            else:
                timeout = self.settings.request_timeout_s
                client = self._module.InferenceServerClient(
                    self.url, connection_timeout=min(timeout, 10.0), network_timeout=timeout
                )
            self._local.client = client
        return client

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        client = getattr(self._local, "client", None)
        if client is not None:
            client.close()
        self._local.__dict__.clear()


# The name ``services.models.client.get_model_client`` imports.
TritonClient = TritonModelClient
