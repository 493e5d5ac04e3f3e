"""Peer tools (the projects headwater is measured against) live in their own virtual environments.

Why: a peer such as ``datatap==0.3.0`` pins old dependencies (``neo4j==4.0.1``, ``fastjsonschema==2.14.2``)
and sets a global multiprocessing start method at import; installing it beside headwater would change
what headwater runs on. Each peer gets ``.venv-peers/<name>`` at the repository root, created on first use
(with pip from PyPI) and reused afterwards; the benchmark runs the peer's side in a subprocess of that
venv on the same data, in the same run. The interop tests use the same venvs (``datatap_python`` and
``cheesechaser_python`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

__all__ = ["peer_python"]

# the repository root: this file is <root>/tests/support/peers.py
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peer_python(name: str, requirements: list[str]) -> str:
    """Return the python of ``.venv-peers/<name>``, creating it and installing ``requirements`` once."""
    home = os.path.join(ROOT, ".venv-peers", name)
    python = os.path.join(home, "bin", "python")
    stamp = os.path.join(home, ".installed")
    wanted = "\n".join(requirements)
    if os.path.exists(stamp) and Path(stamp).read_text() == wanted:
        return python
    if not os.path.exists(python):
        print(f"creating {home} for the peer {name}", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True).create(home)
    subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements], check=True)
    with open(stamp, "w") as f:
        f.write(wanted)
    return python
