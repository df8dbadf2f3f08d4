"""Processes under measurement: launch, watch (progress, CPU seconds, RSS), stop.

The benchmark runs every pipeline as operators would, in its own process,
and reads what the kernel says it cost: CPU seconds (user + system, from
``/proc/PID/stat``) and resident memory (``VmRSS`` and its peak ``VmHWM``
from ``/proc/PID/status``). Per-core throughput is CDRs over CPU seconds,
so it does not depend on how busy the other core was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.broker import free_port, stop_process, wait_for_port
from streams.http.access.users import UserStore

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")

__all__ = ["Process", "Progress", "get_json", "start_callguard", "start_naive_faust"]


# Web port -> the admin token the callguard worker there accepts.
_TOKENS: dict[int, str] = {}


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    """GET a JSON document (error bodies too); ``None`` if nothing answers."""
    token = _TOKENS.get(urllib.parse.urlsplit(url).port or 0)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - local
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - local
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())
    except (OSError, ValueError):
        return None


@dataclass
class Process:
    """A pipeline process with a web port."""

    name: str
    popen: subprocess.Popen[bytes]
    web_port: int
    log_path: Path

    def cpu_seconds(self) -> float:
        """User + system CPU seconds so far (threads included)."""
        fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def memory_bytes(self) -> dict[str, int]:
        """``rss`` now and ``peak_rss`` (VmHWM), in bytes."""
        values = {}
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values["rss" if key == "VmRSS" else "peak_rss"] = int(rest.split()[0]) * 1024
        return values

    def url(self, path: str) -> str:
        """Address of ``path`` on the process's web server."""
        return f"http://127.0.0.1:{self.web_port}{path}"

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's log."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        stop_process(self.popen, timeout_s)


def _launch(name: str, args: list[str], env: dict[str, str], workdir: Path, port: int) -> Process:
    log_path = workdir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    process = Process(name, popen, port, log_path)
    try:
        wait_for_port("127.0.0.1", port, 90)
    except Exception:
        process.stop()
        raise RuntimeError(f"{name} did not open its port:\n{process.log_tail()}") from None
    return process


def start_callguard(name: str, bootstrap: str, workdir: Path, env: dict[str, str]) -> Process:
    """``callguard worker`` with its own data dir, chdb store and web port."""
    port = free_port()
    full_env = {
        **os.environ,
        "CALLGUARD_BROKER_URL": f"kafka://{bootstrap}",
        "CALLGUARD_WEB_PORT": str(port),
        "CALLGUARD_DATA_DIR": str(workdir / f"{name}-data"),
        "CALLGUARD_STORE_URL": f"chdb://{workdir / f'{name}-chdb'}",
        "CALLGUARD_ALLOWLIST_PATH": str(workdir / f"{name}-allowlist.sqlite"),
        "CALLGUARD_USERS_PATH": str(workdir / f"{name}-users.sqlite"),
        **env,
    }
    with UserStore.open(full_env["CALLGUARD_USERS_PATH"]) as users:
        _TOKENS[port] = users.add("bench", "admin", actor="bench")[1]
    return _launch(name, ["-m", "streams", "worker"], full_env, workdir, port)


def start_naive_faust(
    name: str, bootstrap: str, workdir: Path, topic: str, app_id: str, partitions: int
) -> Process:
    """The baseline of :mod:`bench.naive_faust`."""
    port = free_port()
    env = {
        **os.environ,
        "BENCH_TOPIC": topic,
        "BENCH_APP_ID": app_id,
        "BENCH_BROKER": f"kafka://{bootstrap}",
        "BENCH_WEB_PORT": str(port),
        "BENCH_DATA_DIR": str(workdir / f"{name}-data"),
        "BENCH_PARTITIONS": str(partitions),
    }
    return _launch(name, ["-m", "bench.naive_faust", "worker", "-l", "warn"], env, workdir, port)


@dataclass
class Progress:
    """Samples of (wall time, CDRs done, CPU seconds of the watched processes)."""

    samples: list[tuple[float, int, float]] = field(default_factory=list)

    def watch(
        self,
        processes: list[Process],
        done: Callable[[], int | None],
        target: int,
        *,
        timeout_s: float,
        every_s: float = 0.25,
        report: Callable[[int], None] = lambda count: None,
    ) -> bool:
        """Sample until ``done()`` reaches ``target`` or time runs out; True if reached."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            count = done()
            if count is not None:
                cpu = sum(p.cpu_seconds() for p in processes if p.alive())
                self.samples.append((time.monotonic(), count, cpu))
                report(count)
                if count >= target:
                    return True
            if not all(p.alive() for p in processes):
                raise RuntimeError(
                    "a process died:\n" + "\n".join(p.log_tail() for p in processes)
                )
            time.sleep(every_s)
        return False

    def rates(self, low: float = 0.05, high: float = 0.95) -> dict[str, float | None]:
        """CDR/s (wall) and CDR per CPU-second between two shares of the final count.

        Measured between the first samples past ``low`` and ``high`` of what
        was done, so start-up (group join, recovery) and the tail do not count.
        """
        if len(self.samples) < 2:
            return {"cdr_per_s": None, "cdr_per_cpu_s": None, "seconds": None}
        final = self.samples[-1][1]
        first = next(s for s in self.samples if s[1] >= low * final)
        last = next(s for s in self.samples if s[1] >= high * final)
        if last[0] <= first[0] or last[1] <= first[1]:
            # Too few samples inside (a small run): from the last idle sample instead.
            idle = [s for s in self.samples if s[1] == self.samples[0][1]]
            first, last = idle[-1], self.samples[-1]
        seconds, cdrs, cpu = last[0] - first[0], last[1] - first[1], last[2] - first[2]
        return {
            "cdr_per_s": round(cdrs / seconds, 1) if seconds > 0 else None,
            "cdr_per_cpu_s": round(cdrs / cpu, 1) if cpu > 0 else None,
            "seconds": round(seconds, 2),
        }
