"""The embedded offline generator: llama-cpp-python's OpenAI-compatible server on loopback.

tunewiz starts `python -m llama_cpp.server` on 127.0.0.1 on a free port, waits
until `/v1/models` answers, and stops it when done, so the generation code path
is the same as for any remote API. The server is made to die with the process
that started it (Linux PR_SET_PDEATHSIG), so a killed tunewiz leaves no orphan.
"""

from __future__ import annotations

import importlib.util
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tunewiz.errors import TunewizError

# Run in the child before the server starts: ask the kernel for SIGTERM when the
# parent dies, then run the server module as `python -m` would.
_BOOTSTRAP = """
import ctypes, os, runpy, signal, sys
parent = int(sys.argv.pop(1))
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: the parent's stop() is all there is
if os.getppid() != parent:
    sys.exit(0)  # the parent died before the request took effect
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_server_installed() -> None:
    for module in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            raise TunewizError(
                f"the embedded generator needs llama-cpp-python's server ({module} is missing): "
                "install it with `pip install 'llama-cpp-python[server]'`, or pick another "
                "provider with `tunewiz config generator.provider ...`")


class EmbeddedServer:
    """A llama-cpp-python server for one GGUF file, as a context manager.

    >>> with EmbeddedServer(path) as server:
    ...     client = OpenAI(base_url=server.base_url, api_key="none")
    """

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 4096,
                 startup_timeout_s: float = 180.0, log_path: str | os.PathLike[str] | None = None,
                 host: str = "127.0.0.1"):
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self.host = host
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def model(self) -> str:
        """The model name the server answers to (llama-cpp-python accepts any; this is its own)."""
        return str(self.model_path)

    def start(self) -> "EmbeddedServer":
        check_server_installed()
        if not self.model_path.is_file():
            raise TunewizError(f"generator.embedded_gguf: {self.model_path} does not exist")
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="tunewiz-llama-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.port = free_port()
        command = [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()),
                   "--model", str(self.model_path), "--host", self.host, "--port", str(self.port),
                   "--n_ctx", str(self.n_ctx),
                   # Each request's seed is drawn from the previous one, starting at this: a fixed start gave
                   # every new server the same replies in the same order, so asking again got the same ones.
                   "--seed", str(random.randrange(2**31))]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"http://{self.host}:{self.port}/v1/models"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise TunewizError(f"the embedded llama.cpp server for {self.model_path.name} exited "
                                   f"with code {code} while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise TunewizError(f"the embedded llama.cpp server for {self.model_path.name} did not answer "
                           f"within {self.startup_timeout_s:.0f} s; its log is {self.log_path}:\n"
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, AttributeError):
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
