"""`headwater.render.colours`: one colour per class, the same in every process, distinct and bright."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from headwater.render import class_colour, class_colour_hex

NAMES = ["person", "car", "猫", "<img src=x onerror=alert(1)>", ""]


def test_colours_are_the_same_in_another_process_with_another_hash_seed():
    code = ("import json, sys; from headwater.render import class_colour; "
            f"print(json.dumps([class_colour(n) for n in {NAMES!r}]))")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert [tuple(c) for c in json.loads(done.stdout)] == [class_colour(n) for n in NAMES]


def test_hex_is_the_same_colour_and_colours_differ_and_stay_bright():
    for name in NAMES:
        r, g, b = class_colour(name)
        assert class_colour_hex(name) == f"#{r:02x}{g:02x}{b:02x}"
        assert max(r, g, b) >= 0.85 * 255 - 1  # bright enough to read on dark images
    many = {class_colour(f"class{i}") for i in range(200)}
    assert len(many) > 190
