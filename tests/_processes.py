"""Child processes that tests start and must leave stopped (not a test module)."""

from __future__ import annotations

import os
import signal
import subprocess


def stop(proc: subprocess.Popen, *, timeout: float = 30.0) -> None:
    """Stop ``proc`` by its PID: SIGTERM (a server shuts down cleanly), then SIGKILL if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
