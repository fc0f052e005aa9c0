"""``spatialvid stack up|down|status``: the distributed mode as local processes.

``up`` starts Redis (the machine's ``redis-server``, on its own port), an
S3-compatible server (``moto_server``; MinIO in docker-compose and
Kubernetes), the gateway (uvicorn) and one Celery worker per queue
(``--concurrency 1``), plus Triton when the settings ask for it. Every
process writes its log to the stack folder (``.stack/`` by default), and its
PID to ``stack.json`` there. ``up`` returns once every part is healthy and
prints the gateway URL and a development API key; ``down`` stops the
processes by their recorded PIDs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import SecretStr

from services.settings import ConfigError, Settings, load_settings

STATE_FILE = "stack.json"
PYTHON = sys.executable


class StackError(RuntimeError):
    pass


@dataclass
class Proc:
    name: str
    pid: int
    cmd: list[str]
    log: str
    started: int | None = None
    stop_signal: int = signal.SIGTERM
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class StackInfo:
    dir: str
    api_url: str
    api_key: str
    redis_url: str
    s3_endpoint: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)
    processes: list[Proc] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.dir) / STATE_FILE
        # A temporary file of this writer's own: two savers at once (threads, or `stack add-worker` beside
        # `stack restart`) must not rename each other's file away. The last rename wins whole.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.chmod(0o600)  # holds the development key and the object store's secret
        tmp.replace(path)

    @classmethod
    def load(cls, directory: Path) -> "StackInfo | None":
        path = Path(directory) / STATE_FILE
        if not path.exists():
            return None
        raw = json.loads(path.read_text())
        raw["processes"] = [Proc(**p) for p in raw.get("processes", [])]
        return cls(**raw)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``SPATIALVID_SECTION__FIELD`` variables, so child processes see the same values."""
    env: dict[str, str] = {}
    for section_name in type(settings).model_fields:
        section = getattr(settings, section_name)
        for name in type(section).model_fields:
            if name not in section.model_fields_set:
                continue
            value = getattr(section, name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value is None:
                continue
            if isinstance(value, (dict, list, bool)):
                text = json.dumps(section.model_dump(mode="json", include={name})[name])
            else:
                text = str(value.value if hasattr(value, "value") else value)
            env[f"SPATIALVID_{section_name.upper()}__{name.upper()}"] = text
    return env


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot): a PID plus this names one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    return int(fields[19])


def _alive(proc: Proc) -> bool:
    """The PID still runs the process we started (not a recycled PID). The command line is
    not compared: some servers (redis) rewrite their process title."""
    return proc.started is not None and _start_ticks(proc.pid) == proc.started


def _log_tail(path: str, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Stack:
    def __init__(self, settings: Settings, directory: Path | None = None) -> None:
        self.settings = settings
        self.dir = Path(directory or settings.stack.dir).resolve()

    # -- up ---------------------------------------------------------------------
    def up(self, echo: Callable[[str], None] = lambda _: None) -> StackInfo:
        existing = StackInfo.load(self.dir)
        if existing and any(_alive(p) for p in existing.processes):
            raise StackError(f"a stack is already running from {self.dir}: `spatialvid stack status` lists its "
                             "parts, `spatialvid stack restart PART` restarts one, `spatialvid stack down` stops it")
        if shutil.which("redis-server") is None:
            raise StackError("redis-server is not installed (apt-get install redis-server)")
        self.dir.mkdir(parents=True, exist_ok=True)
        from gateway.auth import hash_key, new_key

        conf = self.settings.stack
        redis_port = conf.redis_port or free_port()
        s3_port = conf.s3_port or free_port()
        gateway_port = conf.gateway_port or free_port()
        api_key = new_key()
        keys = dict(self.settings.gateway.api_keys)
        keys["dev"] = hash_key(api_key)
        env = self._env(redis_port, s3_port, gateway_port, keys)
        info = StackInfo(
            dir=str(self.dir), api_url=f"http://127.0.0.1:{gateway_port}", api_key=api_key,
            redis_url=env["SPATIALVID_REDIS__URL"], s3_endpoint=env["SPATIALVID_S3__ENDPOINT"],
            bucket=self.settings.s3.bucket, env=env,
        )
        try:
            redis_dir = self.dir / "redis"
            redis_dir.mkdir(exist_ok=True)
            # Append-only persistence (fsync every second) in the stack folder: jobs survive a Redis
            # restart and `stack down`/`up`, queued tasks included.
            self._spawn(info, "redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                        "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                                        "--dir", str(redis_dir)])
            self._spawn(info, "s3", [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)])
            self._wait(info, "redis", lambda: self._redis_ok(info))
            self._forget_workers(info)  # the previous stack's, from the append-only file
            self._wait(info, "s3", lambda: self._bucket_ok(info))
            echo(f"redis at {info.redis_url}, S3 at http://{info.s3_endpoint} (bucket {info.bucket})")
            if conf.triton:
                self._start_triton(info)
            gateway_cmd = [PYTHON, "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "127.0.0.1",
                           "--port", str(gateway_port), "--workers", str(self.settings.gateway.workers),
                           "--no-access-log", "--loop", "uvloop", "--http", "httptools"]
            # glibc raises its mmap threshold after large frees, after which the upload's
            # MiB-sized buffers land in (and fragment) the heap; a fixed threshold keeps RSS flat.
            self._spawn(info, "gateway", gateway_cmd, extra_env={"MALLOC_MMAP_THRESHOLD_": "262144"})
            from workers.routing import QUEUE_NAMES

            workers = [self._spawn_worker(info, queue) for queue in QUEUE_NAMES]
            self._wait(info, "gateway", lambda: self._http_ok(f"{info.api_url}/readyz"))
            for proc in workers:
                self._wait(info, proc.name, lambda p=proc: self._worker_ready(info, p))
            echo(f"{len(workers)} workers ready: {', '.join(QUEUE_NAMES)}")
        except BaseException:
            self._stop_all(info)
            raise
        return info

    def _env(self, redis_port: int, s3_port: int, gateway_port: int, keys: dict[str, str]) -> dict[str, str]:
        """The environment of every part: the settings, pointed at this stack's Redis, S3 and gateway."""
        env = settings_env(self.settings)
        env.update({
            "SPATIALVID_REDIS__URL": f"redis://127.0.0.1:{redis_port}/0",
            "SPATIALVID_S3__ENDPOINT": f"127.0.0.1:{s3_port}",
            "SPATIALVID_S3__SECURE": "false",
            "SPATIALVID_STORAGE__BACKEND": "s3",
            "SPATIALVID_GATEWAY__HOST": "127.0.0.1",
            "SPATIALVID_GATEWAY__PORT": str(gateway_port),
            "SPATIALVID_GATEWAY__API_KEYS": json.dumps(keys),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    # -- one part at a time ---------------------------------------------------------
    def restart(self, part: str, echo: Callable[[str], None] = lambda _: None) -> list[Proc]:
        """Stop one part of the running stack (if it still runs) and start it again with the stack's
        settings, recording the new PIDs: ``gateway``, ``redis``, ``s3``, ``triton`` or a queue name
        (every worker of that queue; one if none is left)."""
        from workers.routing import QUEUE_NAMES

        info = StackInfo.load(self.dir)
        if info is None:
            raise StackError(f"no stack in {self.dir} (start one with `spatialvid stack up`)")
        servers = [p.name for p in info.processes if not p.name.startswith("worker-")]
        if part in QUEUE_NAMES:
            old = [p for p in info.processes if p.name.startswith(f"worker-{part}-")]
        elif part in servers:
            old = [p for p in info.processes if p.name == part]
        else:
            raise StackError(f"unknown part {part!r}: one of {', '.join([*servers, *QUEUE_NAMES])}")
        for proc in old:
            if self.stop_process(proc):
                echo(f"stopped {proc.name} (pid {proc.pid})")
            info.processes.remove(proc)
        info.save()
        if part in QUEUE_NAMES:
            started = [self._spawn_worker(info, part) for _ in range(max(1, len(old)))]
            for proc in started:
                self._wait(info, proc.name, lambda p=proc: self._worker_ready(info, p))
        else:
            previous = old[0]
            started = [self._spawn(info, part, previous.cmd, stop_signal=previous.stop_signal,
                                   extra_env=previous.extra_env)]
            checks = {"redis": lambda: self._redis_ok(info), "s3": lambda: self._bucket_ok(info),
                      "gateway": lambda: self._http_ok(f"{info.api_url}/readyz"),
                      "triton": lambda: self._http_ok(f"http://{self.settings.triton.url}/v2/health/ready")}
            self._wait(info, part, checks.get(part, lambda: True))
        for proc in started:
            echo(f"started {proc.name} (pid {proc.pid})")
        return started

    def start_worker(self, queue: str) -> Proc:
        """One more worker for ``queue`` on the running stack (returns once it is ready)."""
        info = StackInfo.load(self.dir)
        if info is None:
            raise StackError(f"no stack in {self.dir}")
        proc = self._spawn_worker(info, queue)
        self._wait(info, proc.name, lambda: self._worker_ready(info, proc))
        return proc

    def _spawn_worker(self, info: StackInfo, queue: str) -> Proc:
        node = f"{queue}-{uuid.uuid4().hex[:6]}"
        cmd = [PYTHON, "-m", "celery", "-A", "workers.app", "worker", "-Q", queue, "--concurrency", "1",
               "-n", f"{node}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]
        return self._spawn(info, f"worker-{node}", cmd)

    def _start_triton(self, info: StackInfo) -> None:
        if not (Path(__file__).parent / "triton_server.py").exists():
            raise StackError("settings ask for Triton, but services/triton_server.py is not here")
        # SIGINT: its main() stops the server (and its stubs) on KeyboardInterrupt.
        self._spawn(info, "triton", [PYTHON, "-m", "services.triton_server"], stop_signal=signal.SIGINT)
        url = f"http://{self.settings.triton.url}/v2/health/ready"
        self._wait(info, "triton", lambda: self._http_ok(url), timeout=max(self.settings.stack.start_timeout_s, 300))

    def _spawn(self, info: StackInfo, name: str, cmd: list[str], stop_signal: int = signal.SIGTERM,
               extra_env: dict[str, str] | None = None) -> Proc:
        log = self.dir / f"{name}.log"
        env = {**os.environ, **info.env, **(extra_env or {})}
        with open(log, "ab") as handle:
            process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, cwd=Path(__file__).resolve().parents[1], start_new_session=True)
        proc = Proc(name=name, pid=process.pid, cmd=cmd, log=str(log), started=_start_ticks(process.pid),
                    stop_signal=int(stop_signal), extra_env=dict(extra_env or {}))
        info.processes.append(proc)
        info.save()
        return proc

    def _wait(self, info: StackInfo, name: str, check: Callable[[], bool], timeout: float | None = None) -> None:
        proc = next(p for p in info.processes if p.name == name)
        deadline = time.monotonic() + (timeout or self.settings.stack.start_timeout_s)
        while time.monotonic() < deadline:
            if not _alive(proc):
                raise StackError(f"{name} exited while starting; its log ({proc.log}) ends with:\n{_log_tail(proc.log)}")
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise StackError(f"{name} not healthy after {timeout or self.settings.stack.start_timeout_s:.0f} s; "
                         f"its log ({proc.log}) ends with:\n{_log_tail(proc.log)}")

    @staticmethod
    def _redis_ok(info: StackInfo) -> bool:
        import redis

        return bool(redis.Redis.from_url(info.redis_url, socket_timeout=1).ping())

    @staticmethod
    def _forget_workers(info: StackInfo) -> None:
        import redis

        from workers.state import WORKERS

        redis.Redis.from_url(info.redis_url, socket_timeout=2).delete(WORKERS)

    def _bucket_ok(self, info: StackInfo) -> bool:
        from services.storage.s3 import S3Store

        host, port = info.s3_endpoint.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1):
            pass  # listening: only now ask the S3 client (it would retry and log)

        s3 = self.settings.s3.model_copy(update={"endpoint": info.s3_endpoint, "secure": False})
        S3Store(s3).ensure_bucket()
        return True

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @staticmethod
    def _worker_ready(info: StackInfo, proc: Proc) -> bool:
        import redis

        from workers.state import WORKERS

        client = redis.Redis.from_url(info.redis_url, socket_timeout=1)
        return any(json.loads(v)["pid"] == proc.pid for v in client.hvals(WORKERS))

    # -- down -------------------------------------------------------------------
    def down(self, echo: Callable[[str], None] = lambda _: None) -> int:
        info = StackInfo.load(self.dir)
        if info is None:
            echo(f"no stack recorded in {self.dir}")
            return 0
        stopped = self._stop_all(info, echo)
        (self.dir / STATE_FILE).unlink(missing_ok=True)
        return stopped

    @staticmethod
    def stop_process(proc: Proc, sig: int | None = None, timeout: float = 20.0) -> bool:
        """Stop one recorded process (and its group: a worker's pool children); True if it was running."""
        if not _alive(proc):
            return False
        try:
            os.killpg(proc.pid, sig if sig is not None else proc.stop_signal)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(proc):
            time.sleep(0.1)
        if _alive(proc):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return True

    def _stop_all(self, info: StackInfo, echo: Callable[[str], None] = lambda _: None) -> int:
        stopped = 0
        # Workers and the gateway first, the servers they talk to last.
        for proc in reversed(info.processes):
            if self.stop_process(proc):
                stopped += 1
                echo(f"stopped {proc.name} (pid {proc.pid})")
        return stopped


# -- command line ---------------------------------------------------------------------
def register(subparsers: argparse._SubParsersAction) -> None:
    stack = subparsers.add_parser("stack", help="run the distributed mode as local processes")
    sub = stack.add_subparsers(dest="stack_command", required=True)
    up = sub.add_parser("up", help="start Redis, the S3 server, the gateway and one worker per queue")
    up.add_argument("--config", type=Path, default=None, metavar="FILE", help="YAML settings file")
    up.add_argument("--dir", type=Path, default=None, help="folder for logs and PIDs (default .stack)")
    up.set_defaults(handler=_cmd_up)
    down = sub.add_parser("down", help="stop the processes `stack up` started")
    down.add_argument("--dir", type=Path, default=None)
    down.set_defaults(handler=_cmd_down)
    status = sub.add_parser("status", help="which of the stack's processes run (exit 0 if all, 1 otherwise)")
    status.add_argument("--dir", type=Path, default=None)
    status.set_defaults(handler=_cmd_status)
    restart = sub.add_parser("restart", help="stop one part (if it runs) and start it again with the stack's "
                             "settings: gateway, redis, s3, triton or a queue's workers")
    restart.add_argument("part", metavar="gateway|redis|s3|QUEUE")
    restart.add_argument("--dir", type=Path, default=None)
    restart.set_defaults(handler=_cmd_restart)
    add_worker = sub.add_parser("add-worker", help="start one more worker for QUEUE with the stack's settings "
                                "(recorded, so `down` stops it too)")
    add_worker.add_argument("queue")
    add_worker.add_argument("--dir", type=Path, default=None)
    add_worker.set_defaults(handler=_cmd_add_worker)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _cmd_up(args: argparse.Namespace) -> int:
    try:
        stack = Stack(_settings(args), args.dir)
        info = stack.up(echo=lambda m: print(m, file=sys.stderr))
    except (StackError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"logs and PIDs in {info.dir}", file=sys.stderr)
    print(f"export SPATIALVID_API_URL={info.api_url}")
    print(f"export SPATIALVID_API_KEY={info.api_key}")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    Stack(_settings(args), args.dir).down(echo=lambda m: print(m, file=sys.stderr))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    stack = Stack(_settings(args), args.dir)
    info = StackInfo.load(stack.dir)
    if info is None:
        print(f"no stack in {stack.dir}")
        return 1
    print(f"gateway {info.api_url}")
    running = 0
    for proc in info.processes:
        alive = _alive(proc)
        running += alive
        print(f"{proc.name:32} pid {proc.pid:>7}  {'running' if alive else 'stopped'}  {proc.log}")
    return 0 if running == len(info.processes) else 1


def _cmd_restart(args: argparse.Namespace) -> int:
    try:
        Stack(_settings(args), args.dir).restart(args.part, echo=lambda m: print(m, file=sys.stderr))
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_add_worker(args: argparse.Namespace) -> int:
    from workers.routing import QUEUE_NAMES

    if args.queue not in QUEUE_NAMES:
        print(f"error: unknown queue {args.queue!r}: one of {', '.join(QUEUE_NAMES)}", file=sys.stderr)
        return 1
    try:
        proc = Stack(_settings(args), args.dir).start_worker(args.queue)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"started {proc.name} (pid {proc.pid})", file=sys.stderr)
    return 0
