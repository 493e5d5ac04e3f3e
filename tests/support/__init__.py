"""Helpers shared by the tests and the benchmarks (imported as ``tests.support.<module>``).

* :mod:`.httpserver` — the one stand-in HTTP server: static files with ranges, auth, latency, counters and
  fault injection, in a thread, a child process or standalone.
* :mod:`.faultproxy` — a TCP proxy that injects network faults (resets, cut bodies, stalls, slow links,
  429/503) between real clients and a real server, counting them.
* :mod:`.ports` — a free port on 127.0.0.1, and waiting until a server started in another process answers.
* :mod:`.peers` — the peer tools' own virtual environments under ``.venv-peers/`` at the repository root.

The benchmarks are scripts, not part of the test package: they put the repository root on ``sys.path``
and import from here like the tests do.
"""

__all__: list[str] = []
