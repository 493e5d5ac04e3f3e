"""What every benchmark shares, so that their figures can be trusted and compared (issue 16).

Conventions (benchmarks/README.md states them once):

* The sides run **alternately** — round 1 runs A then B, round 2 B then A, … — so a slow phase of a shared
  machine (another process, a cold cache, CPU boost ending) hits both sides instead of one.
* Each side runs ``--runs`` times (default 3, at least 1); the script prints **min / median / max** and quotes
  the **median**. A ratio is the median of one side over the median of the other, with the min–max of the
  per-round ratios beside it, so a reader sees how much one round can differ from the headline.
* The header says which machine it was (:func:`describe_machine`): usable cores, CPU model and the flags that
  change the figures (``sha_ni`` for hashing, ``avx2``/``avx512f`` for copies and JSON), RAM, Python.
* Where it is cheap to measure in the same run, the script also prints the **limit** — the best the machine
  can do for the same bytes (hashing them with :mod:`hashlib`, reading them from the page cache, one plain
  loopback GET) — so a figure reads as "x of what is possible", not only "x times the peer".

Example::

    >>> rounds = alternate({"a": lambda: None, "b": lambda: None}, runs=3)
    >>> [len(s) for s in rounds.values()]
    [3, 3]
    >>> Spread([3.0, 1.0, 2.0]).median
    2.0
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

__all__ = [
    "CPU_FLAGS",
    "Spread",
    "add_runs_option",
    "alternate",
    "describe_machine",
    "limit_line",
    "median_run",
    "ratio_line",
    "spread_table",
]

CPU_FLAGS = ("sha_ni", "avx2", "avx512f", "aes", "pclmulqdq")
"""The /proc/cpuinfo flags that change our figures: hashing (sha_ni), copies and JSON (avx2/avx512f), TLS."""


@dataclass(frozen=True)
class Spread:
    """min / median / max of a few samples (seconds, or a rate)."""

    samples: Sequence[float]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def rates(self, amount: float) -> Spread:
        """The same runs as ``amount`` per second (so min of the rates is the slowest run)."""
        return Spread([amount / s for s in self.samples])


def median_run(runs: Sequence[T], key: Callable[[T], float]) -> T:
    """The run whose ``key`` is the median (the upper one of an even count): its other figures (requests,
    bytes) are the ones a table shows beside the median time."""
    return sorted(runs, key=key)[len(runs) // 2]


def add_runs_option(parser: argparse.ArgumentParser, default: int = 3) -> None:
    """Add ``--runs`` (runs of each side, alternating; at least 1) — the one spelling every script uses."""

    def positive(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError("--runs must be at least 1")
        return value

    parser.add_argument(
        "--runs", type=positive, default=default,
        help=f"runs of each side, alternating; min/median/max printed, the median quoted (default {default})",
    )


def alternate(
    sides: Mapping[str, Callable[[], float | None]], runs: int, *, log: Callable[[str], None] | None = None
) -> dict[str, list[float]]:
    """Run every side ``runs`` times, the order reversed every round; returns the seconds of each run.

    A side returns ``None`` to be timed here (wall clock around the call) or the seconds it measured
    itself (when setup inside the call must not count)."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        for name in names if run % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            measured = sides[name]()
            seconds = time.perf_counter() - start if measured is None else measured
            times[name].append(seconds)
            if log is not None:
                log(f"  run {run + 1}/{runs} {name}: {seconds:.3f} s")
    return times


def _cpuinfo() -> tuple[str, list[str]]:
    model = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = value.split()
    except OSError:
        pass
    return model, flags


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def describe_machine() -> str:
    """One line naming the machine: usable/total cores, CPU model and flags, RAM, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model, flags = _cpuinfo()
    have = [f"{flag}{'' if flag in flags else ' NO'}" for flag in CPU_FLAGS] if flags else ["flags unknown"]
    ram = _ram_bytes()
    ram_text = f"{ram / 2**30:.1f} GiB RAM" if ram else "RAM unknown"
    return (f"machine: {usable} usable of {os.cpu_count()} cores, {model} ({', '.join(have)}), {ram_text}, "
            f"Python {platform.python_version()} {platform.python_implementation()} on {platform.machine()}")


def spread_table(
    rows: Mapping[str, Spread], unit: str, *, fmt: str = ",.3f", width: int = 34
) -> str:
    """A table of min / median / max, one row a side; the median column is the figure to quote."""
    lines = [f"{'side':<{width}} {'min':>12} {'median':>12} {'max':>12}  {unit}", "-" * (width + 42 + len(unit))]
    for name, spread in rows.items():
        lines.append(
            f"{name:<{width}} {spread.min:>12{fmt}} {spread.median:>12{fmt}} {spread.max:>12{fmt}}"
        )
    return "\n".join(lines)


def ratio_line(label: str, slow: Sequence[float], fast: Sequence[float]) -> tuple[float, str]:
    """``median(slow) / median(fast)`` and a line with the min–max of the per-round ratios.

    Rounds pair up by index (the same round of :func:`alternate`)."""
    ratio = statistics.median(slow) / statistics.median(fast)
    rounds = [s / f for s, f in zip(slow, fast, strict=True)]
    return ratio, f"{label}: {ratio:.2f}x (medians; per-round {min(rounds):.2f}x – {max(rounds):.2f}x)"


def limit_line(what: str, limit_seconds: Sequence[float], side_seconds: Sequence[float], amount: float,
               unit: str) -> str:
    """The limit (median rate of the same work done the cheapest way) and the side's share of it."""
    limit_rate = amount / statistics.median(limit_seconds)
    side_rate = amount / statistics.median(side_seconds)
    return (f"limit ({what}): {limit_rate:,.1f} {unit} (median of {len(limit_seconds)}); "
            f"measured side at {side_rate / limit_rate:.2f} of it")
