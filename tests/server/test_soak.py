"""A smoke run of ``benchmarks/soak.py`` (the soak itself is a benchmark, not a test): a few seconds with
four clients must end with every goal row at zero, so the script does not rot between soaks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import headwater

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the soak finds server workers in /proc")


def test_a_short_soak_ends_with_every_goal_at_zero(tmp_path) -> None:
    tree = os.path.dirname(os.path.dirname(os.path.abspath(headwater.__file__)))
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "soak.py"), "--seconds", "3",
                           "--clients", "4", "--files", "200", "--droplets", "1000", "--fault-rate", "0.3",
                           "--kill-every", "1.5"], capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    goals = proc.stdout.split("goals (all must be 0):")[1].splitlines()[1:7]
    assert len(goals) == 6 and all(line.split()[-1] == "0" for line in goals), proc.stdout
    assert "workers SIGKILLed" in proc.stdout and "faults injected: reset" in proc.stdout
