"""What a user sees when a setting or the broker's address is wrong: one line, naming what to
fix, and exit status 1, quickly. (Errors met with a broker running: tests/integration.)"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _riskstream(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("RISKSTREAM_")}
    started = time.monotonic()
    done = subprocess.run([str(BIN / "riskstream"), *args], env={**clean, **env},
                          capture_output=True, text=True, timeout=60, check=False)
    return done, time.monotonic() - started


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["worker"], ["replay", __file__], ["topics"]])
def test_a_malformed_setting_is_named_in_one_line(command: list[str]) -> None:
    done, _ = _riskstream(*command, RISKSTREAM_PARTITIONS="abc")
    line = _one_line(done)
    assert "RISKSTREAM_PARTITIONS=abc" in line and "integer" in line


def test_no_broker_at_the_address_says_so_within_ten_seconds(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    history = tmp_path / "history.jsonl"
    history.write_text("")
    for command in (["worker"], ["replay", str(history)], ["alerts"], ["topics"]):
        done, seconds = _riskstream(*command, "--bootstrap", f"127.0.0.1:{port}")
        line = _one_line(done)
        assert f"127.0.0.1:{port}" in line and "riskstream broker" in line, line
        assert seconds < 10, f"{command}: {seconds:.1f} s"
