"""Start and stop a local Triton Inference Server from its own virtualenv.

``nvidia-pytriton`` ships the ``tritonserver`` binary and the Python backend.
It pins numpy<2, so it lives in its own virtualenv (``make triton-venv``, see
``mk/triton.mk``). Running it needs three things that its wheel does not set up:

- ``LD_LIBRARY_PATH`` holding that Python's ``LIBDIR`` (the stub links
  ``libpython3.11.so``) and its ``bin`` first on ``PATH`` (the stub's embedded
  Python finds the virtualenv's packages through the ``python3`` there);
- a backend folder ``python/`` made of *symlinks* to the wheel's
  ``libtriton_python.so``, ``triton_python_backend_utils.py`` and the stub for
  this Python version: their RPATH is ``$ORIGIN``-relative, so a copied stub
  cannot find its libraries and hangs the server while loading;
- readiness through ``/v2/health/ready``, watching that the process lives.

The server is stopped by its PID (SIGTERM, then SIGKILL of its process group);
when it had to be killed, its Python-backend shared-memory regions are removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from services.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
SHM_PREFIX = "triton_python_backend_shm_region_"
BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")


class TritonUnavailable(RuntimeError):
    """The Triton server cannot be installed, started or reached; the message says why."""


@dataclass(frozen=True)
class TritonInstallation:
    """Where the pieces of ``nvidia-pytriton`` are in the server's virtualenv."""

    venv: Path
    python_version: str  # "3.11"
    libdir: Path  # the virtualenv Python's LIBDIR (libpython3.X.so)
    server_dir: Path  # .../site-packages/pytriton/tritonserver

    @property
    def binary(self) -> Path:
        return self.server_dir / "bin" / "tritonserver"

    @property
    def stub(self) -> Path:
        return self.server_dir / "python_backend_stubs" / self.python_version / "triton_python_backend_stub"

    def backend_sources(self) -> dict[str, Path]:
        sources = {name: self.server_dir / "backends" / "python" / name for name in BACKEND_FILES}
        sources["triton_python_backend_stub"] = self.stub
        return sources


def find_installation(venv: Path) -> TritonInstallation:
    """Locate tritonserver in ``venv``; raise TritonUnavailable naming what is missing."""
    venv = _absolute(venv)
    python = venv / "bin" / "python"
    if not python.exists():
        raise TritonUnavailable(f"no Triton virtualenv at {venv} (create it with `make triton-venv`)")
    probe = (
        "import json, sys, sysconfig, importlib.util as u; "
        "s = u.find_spec('pytriton'); "
        "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
        "'libdir': sysconfig.get_config_var('LIBDIR'), "
        "'pytriton': s.submodule_search_locations[0] if s else None}))"
    )
    try:
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60, check=True)
        info = json.loads(out.stdout)
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        raise TritonUnavailable(f"cannot run the Triton virtualenv's Python {python}: {exc}") from exc
    if not info["pytriton"]:
        raise TritonUnavailable(f"nvidia-pytriton is not installed in {venv} (run `make triton-venv`)")
    install = TritonInstallation(
        venv=venv,
        python_version=info["version"],
        libdir=Path(info["libdir"]),
        server_dir=Path(info["pytriton"]) / "tritonserver",
    )
    missing = [str(p) for p in [install.binary, *install.backend_sources().values()] if not p.exists()]
    if missing:
        raise TritonUnavailable(f"nvidia-pytriton in {venv} lacks: {', '.join(missing)}")
    return install


def prepare_backend_dir(install: TritonInstallation, dest: Path) -> Path:
    """A backend folder ``dest/python/`` of symlinks to the wheel's Python backend; returns ``dest``."""
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for name, source in install.backend_sources().items():
        link = python_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return dest


def server_environment(install: TritonInstallation, weights_dir: Path) -> dict[str, str]:
    """The server's environment: the virtualenv first, its Python's LIBDIR, the weights folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV")}
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(install.libdir), env.get("LD_LIBRARY_PATH")]))
    env["PATH"] = os.pathsep.join([str(install.venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(install.venv)
    # model.py files import shared code from the repository (services.models ...).
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["SPATIALVID_MODELS__WEIGHTS_DIR"] = str(Path(weights_dir).expanduser().resolve())
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TritonServer:
    """One local tritonserver process serving ``settings.triton.model_repository``.

    Use as a context manager, or ``start()`` / ``stop()``. Ports and addresses
    come from ``settings.triton.url`` / ``grpc_url`` / ``metrics_port``.
    """

    def __init__(self, settings: Settings, log_path: Path | None = None) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="spatialvid-triton-"))
        self.log_path = log_path or self._workdir / "tritonserver.log"
        # Unique per server so that a forced cleanup touches only this server's regions.
        self.shm_prefix = f"{SHM_PREFIX}spatialvid{os.getpid()}_{self._workdir.name[-8:]}_"

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.triton.url}"

    def command(self, install: TritonInstallation) -> list[str]:
        t = self.settings.triton
        http_host, http_port = _split_host_port(t.url)
        grpc_host, grpc_port = _split_host_port(t.grpc_url)
        backends = prepare_backend_dir(install, self._workdir / "backends")
        cmd = [
            str(install.binary),
            f"--model-repository={_absolute(t.model_repository)}",
            f"--backend-directory={backends}",
            f"--http-address={http_host}",
            f"--http-port={http_port}",
            f"--grpc-address={grpc_host}",
            f"--grpc-port={grpc_port}",
            f"--metrics-port={t.metrics_port}",
            # Ready means the server answers; each model reports its own readiness,
            # so one model without weights does not take the others down.
            "--strict-readiness=false",
            "--exit-on-error=false",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            "--backend-config=python,shm-default-byte-size=16777216",
            "--backend-config=python,shm-growth-byte-size=16777216",
            "--log-verbose=0",
        ]
        config_name = resolve_config_name(t.config_name)
        if config_name:
            cmd.append(f"--model-config-name={config_name}")
        if t.models:
            cmd.append("--model-control-mode=explicit")
            cmd += [f"--load-model={name}" for name in t.models]
        return cmd

    def start(self) -> "TritonServer":
        if self.process is not None:
            return self
        install = find_installation(self.settings.triton.venv)
        env = server_environment(install, self.settings.models.weights_dir)
        cmd = self.command(install)
        with open(self.log_path, "ab") as log:
            # Own session: the Python stubs are its children, so the group can be killed at once.
            self.process = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_death_signal_setter(),
            )
        try:
            self._wait_ready(self.settings.triton.startup_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise TritonUnavailable(f"tritonserver exited with code {code} while starting:\n{self.log_tail()}")
            if self.is_ready():
                return
            time.sleep(0.2)
        raise TritonUnavailable(f"tritonserver not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def model_states(self) -> dict[str, dict[str, str]]:
        """Each model in the repository: its state (READY, UNAVAILABLE, ...) and, if failed, why."""
        req = urllib.request.Request(f"{self.http_url}/v2/repository/index", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            rows = json.loads(resp.read())
        return {r["name"]: {"state": r.get("state", ""), "reason": r.get("reason", "")} for r in rows}

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 40.0) -> None:
        """SIGTERM by PID and wait; if it will not exit, kill its process group and clean its shared memory."""
        process, self.process = self.process, None
        if process is None:
            return
        killed = False
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                killed = True
                _kill_group(process.pid)
                process.wait(timeout=10)
        # Stubs left behind by a crashed server also go with the group.
        _kill_group(process.pid)
        if killed or process.returncode not in (0, None):
            self.clean_shared_memory()
        # The backend symlinks (and the log, unless it was asked for elsewhere) go too.
        keep_log = self.log_path.parent == self._workdir
        shutil.rmtree(self._workdir / "backends" if keep_log else self._workdir, ignore_errors=True)

    def clean_shared_memory(self) -> list[Path]:
        removed = []
        for region in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            try:
                region.unlink()
                removed.append(region)
            except OSError:
                pass
        return removed

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolve_config_name(name: str) -> str:
    """``auto``: the production config (GPU) where an NVIDIA GPU is visible, else ``cpu``."""
    if name != "auto":
        return name
    has_gpu = Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None
    return "" if has_gpu else "cpu"


def _death_signal_setter():
    """A preexec_fn that makes the child get SIGTERM when the process that started it dies,
    so a killed launcher never leaves a server (and its stubs) behind. Resolved here, in the
    parent: the child, forked from a possibly threaded process, must not import anything."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _split_host_port(address: str) -> tuple[str, int]:
    address = address.split("://", 1)[-1]
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def _absolute(path: Path) -> Path:
    path = Path(path).expanduser()
    return path if path.is_absolute() else (REPO_ROOT / path).resolve()


def main(argv: list[str] | None = None) -> int:
    """``python -m services.triton_server``: run a server in the foreground until interrupted."""
    from services.settings import load_settings

    settings = load_settings()
    server = TritonServer(settings)
    # SIGTERM stops it as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    server.start()
    print(f"tritonserver ready at {server.http_url} (pid {server.process.pid}), log {server.log_path}", flush=True)
    for name, state in sorted(server.model_states().items()):
        print(f"  {name}: {state['state'] or 'not loaded'} {state['reason']}".rstrip(), flush=True)
    try:
        while server.process and server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
