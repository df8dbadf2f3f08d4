"""The README's demo command plays a scenario headless to its end, flags numbers, cleans up."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.broker import free_port
from streams.http.access.tokens import split_token, verify_secret
from streams.http.access.users import UserStore
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_demo_runs_headless_and_flags_numbers(model_dir: Path, tmp_path: Path) -> None:
    home = tmp_path / "demo"
    shutil.copytree(model_dir, home / "models")  # the demo trains only when no model serves
    web_port = free_port()
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "streams", "demo", "--until-done", "--duration", "240",
         "--plain", "--scenario", "tiny", "--acceleration", "3000", "--home", str(home),
         "--web-port", str(web_port)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"every CDR decided on and all \d+ decisions shown", done.stderr), done.stderr
    decisions = [line for line in done.stdout.splitlines() if re.search(r"\b(block|watch)\b", line)]
    assert decisions, done.stdout + done.stderr
    assert "model" in done.stderr and "serves" in done.stderr
    assert f"http://127.0.0.1:{web_port}/dashboard" in done.stderr
    # How to sign in: the URL, the operator's name and a token the users file accepts.
    assert f"sign in at http://127.0.0.1:{web_port}/login as 'demo' (operator)" in done.stderr
    token = split_token(re.search(r"\b(cg_\w+_\S+)", done.stderr).group(1))
    with UserStore.open(home / "users.sqlite") as users:
        stored = users.token(token.token_id)
    assert stored is not None and (stored.name, stored.role) == ("demo", "operator")
    assert verify_secret(token.secret, stored.salt, stored.token_hash, stored.kdf)
    broker_port = re.search(r"broker on kafka://127.0.0.1:(\d+)", done.stderr).group(1)
    for name in ("simulator", "worker"):
        assert f"[demo] {name} stopped" in done.stderr
    assert not listening(web_port) and not listening(int(broker_port))
    leftovers = subprocess.run(  # noqa: S603, S607
        ["pgrep", "-f", f"127.0.0.1:{broker_port}"], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == "", f"processes left behind: {leftovers.stdout}"
    assert (home / "logs" / "worker.log").exists()
