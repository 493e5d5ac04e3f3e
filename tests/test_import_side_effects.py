"""Importing headwater changes nothing global: no start method, no logging config, no files written.

datatap calls ``multiprocessing.set_start_method('spawn', force=True)`` at import, which silently changes
how every DataLoader of the importing program starts its workers; a library must not do that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

MODULES = [
    "headwater", "headwater.storage", "headwater.archive", "headwater.pool", "headwater.droplet",
    "headwater.catalog", "headwater.client", "headwater.publish", "headwater.server", "headwater.integrations",
    "headwater.publish.sources.coco", "headwater.publish.sources.yolo", "headwater.integrations.torch",
    "headwater.cli",
]

PROBE = """
import importlib, json, logging, multiprocessing, sys
before = {"method": multiprocessing.get_start_method(allow_none=True),
          "handlers": len(logging.getLogger().handlers), "level": logging.getLogger().level}
for name in sys.argv[1:]:
    importlib.import_module(name)
after = {"method": multiprocessing.get_start_method(allow_none=True),
         "handlers": len(logging.getLogger().handlers), "level": logging.getLogger().level}
print(json.dumps([before, after]))
"""


def test_importing_every_layer_has_no_global_side_effects(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "XDG_DATA_HOME": str(home / ".local" / "share")}
    env.pop("HEADWATER_CACHE", None)
    env.pop("HEADWATER_CATALOG", None)
    out = subprocess.run([sys.executable, "-c", PROBE, *MODULES], env=env, cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before["method"] is None
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert list(home.rglob("*")) == []
