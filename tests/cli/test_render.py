"""`headwater render` end to end on a real catalog and pool: files, one file, contact sheets, selection,
filters, bad images as placeholders (exit 1), clear errors — locally and through a live server."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from headwater.archive import pack_directory
from headwater.catalog import Catalog
from headwater.cli import main
from headwater.render import class_colour
from headwater.server.app import ServerConfig

from ..support.servers import live_server

N = 7  # droplets in split "train": 0–4 good images, 5 not decodable, 6 missing from the pool
BOX = {"boundingBox": {"rectangle": [[0.25, 0.25], [0.75, 0.75]], "confidence": 0.9}}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["render", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A catalog (public database main, dataset acme/cats, split train) whose images are in a packed pool."""
    root = tmp_path_factory.mktemp("render")
    src, pool = root / "src", root / "pools" / "cats"
    src.mkdir()
    for i in range(5):
        Image.new("RGB", (160, 120), (40 * i, 90, 90)).save(src / f"{i}.jpg", quality=95)
    (src / "5.jpg").write_bytes(b"these bytes are not a JPEG")
    pack_directory(str(src), str(pool), silent=True)
    rows = []
    for i in range(N):
        classes = {"cat": {"instances": [BOX]}} if i % 2 == 0 else {"dog": {"instances": [BOX]}}
        if i == 3:
            classes["cat"] = {"instances": [{"boundingBox": {"rectangle": [[0.5, 0.5], [1.4, 0.9]]}}]}
        rows.append(json.dumps({"kind": "ImageAnnotation", "image": {"paths": [f"pool://images/{i}.jpg"]},
                                "classes": classes, "uid": f"cat-{i}"}).encode())
    catalog = str(root / "catalog.sqlite")
    with Catalog(catalog) as cat:
        cat.create_database("main", public=True)
        cat.publish("main", "acme", "cats", template={}, splits={"train": rows}, tags=["latest"],
                    pools={"images": str(pool)})
    return catalog, str(root / "pools")


def local(world, *args: str) -> tuple[int, str, str]:
    return run("main/acme/cats", "train", "--catalog", world[0], *args)


def test_one_file_per_droplet_into_a_folder_with_placeholders_and_notes(world, tmp_path):
    out = tmp_path / "out"
    code, stdout, stderr = local(world, "-o", str(out))
    assert code == 1, stderr  # done, but two images could not be drawn: each named
    assert stdout.strip() == f"wrote {N} image(s) to {out}"
    assert sorted(os.listdir(out)) == [f"{i}-cat-{i}.png" for i in range(N)]
    assert "failed #5 (cat-5): not decodable" in stderr and "failed #6 (cat-6): image missing" in stderr
    assert "note: #3 (cat-3): cat instance 0: coordinates outside [0, 1], drawn clipped" in stderr
    first = Image.open(out / "0-cat-0.png")
    assert first.size == (160, 120) and first.convert("RGB").getpixel((40, 60)) == class_colour("cat")
    assert Image.open(out / "6-cat-6.png").size == (256, 256)  # the placeholder tile


def test_one_droplet_by_ordinal_or_uid_to_a_file_with_filters(world, tmp_path):
    code, stdout, _ = local(world, "--ordinal", "2", "--size", "80", "-o", str(tmp_path / "two.jpg"))
    assert code == 0 and stdout.strip() == f"wrote {tmp_path / 'two.jpg'}"
    assert Image.open(tmp_path / "two.jpg").size == (80, 60)
    code, _, _ = local(world, "--uid", "cat-4", "--class", "dog", "--no-labels", "-o", str(tmp_path / "four.png"))
    assert code == 0
    four = Image.open(tmp_path / "four.png").convert("RGB")
    assert four.getpixel((40, 60)) == (160, 90, 90)  # cat-4 has only a cat: nothing drawn over the image
    code, _, _ = local(world, "--uid", "cat-4", "--min-confidence", "0.5", "--no-labels", "-o", str(tmp_path / "c.png"))
    assert code == 0 and Image.open(tmp_path / "c.png").convert("RGB").getpixel((40, 60)) == class_colour("cat")


def test_limit_and_class_select_droplets(world, tmp_path):
    code, _, _ = local(world, "--ordinal", "1", "--limit", "2", "--class", "cat", "-o", str(tmp_path / "o"))
    assert code == 0 and sorted(os.listdir(tmp_path / "o")) == ["2-cat-2.png", "3-cat-3.png"]  # 1 is a dog: skipped


def test_contact_sheet(world, tmp_path):
    sheet = tmp_path / "sheet.jpg"
    code, stdout, stderr = local(world, "--grid", "4x2", "--size", "64", "-o", str(sheet))
    assert "failed #5 (cat-5)" in stderr and code == 1
    assert stdout.strip() == f"wrote a 4x2 sheet of {N} droplet(s) to {sheet}"
    img = Image.open(sheet)
    assert img.format == "JPEG" and img.size[0] == 4 * 64 and img.size[1] > 2 * 64
    code, _, _ = local(world, "--grid", "2x1", "--limit", "2", "--format", "png", "-o", str(tmp_path / "s"))
    assert code == 0 and Image.open(tmp_path / "s").format == "PNG"


@pytest.mark.parametrize("args, message", [
    (["--ordinal", "7"], "Invalid value for --ordinal: 7 is out of range: split 'train' has 7 droplet(s)"),
    (["--uid", "nope"], "error: no droplet with uid 'nope' in split 'train'"),
    (["--uid", "cat-1", "--ordinal", "1"], "--uid names one droplet"),
    (["--grid", "3"], "'3' is not COLSxROWS"),
    (["--grid", "0x2"], "columns and rows must be in [1, 100]"),
    (["--grid", "2x2", "--limit", "5"], "5 droplets do not fit a 2x2 grid (4 cells)"),
    (["--limit", "3", "-o", "many.png"], "names one file: choose one droplet"),
])
def test_usage_errors(world, tmp_path, args, message):
    if "-o" not in args:
        args = [*args, "-o", str(tmp_path / "x.png" if "--uid" in args or "--ordinal" in args else tmp_path / "x")]
    else:
        args = [a if a != "many.png" else str(tmp_path / a) for a in args]
    code, _, stderr = local(world, *args)
    assert code == 2 and message in stderr, stderr
    assert "Traceback" not in stderr


def test_unknown_dataset_split_and_unwritable_output(world, tmp_path):
    code, _, stderr = run("main/acme/dogs", "train", "--catalog", world[0], "-o", str(tmp_path / "o"))
    assert code == 2 and "error:" in stderr and "dogs" in stderr
    code, _, stderr = run("main/acme/cats", "validation", "--catalog", world[0], "-o", str(tmp_path / "o"))
    assert code == 2 and "error: split 'validation' not found in dataset" in stderr
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, stderr = local(world, "-o", str(blocker / "sub"))
    assert code == 2 and f"cannot write {blocker / 'sub'}: cannot create folder" in stderr
    code, _, stderr = local(world, "--grid", "2x2", "-o", str(tmp_path))
    assert code == 2 and "is a folder; with --grid" in stderr


def test_the_readme_examples_run(world, tmp_path, monkeypatch):
    """Every `headwater render` line of the README's "Look at the data" block, on a catalog like its cats."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Look at the data", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.startswith("headwater render")]
    assert len(lines) == 4
    monkeypatch.chdir(tmp_path)
    for line in lines:
        args = shlex.split(line)[2:]
        code, stdout, stderr = run(*args, "--catalog", world[0])
        assert code == 0 or (code == 1 and "failed #" in stderr), (line, stderr)
        assert stdout.startswith("wrote "), line
    assert {"cat3.png", "cats", "cat-4.jpg", "sheet.jpg"} <= set(os.listdir(tmp_path))
    assert sorted(os.listdir(tmp_path / "cats")) == ["0-cat-0.png", "2-cat-2.png", "3-cat-3.png", "4-cat-4.png",
                                                     "6-cat-6.png"]
    from headwater.client import Api

    snippet = readme.split("### Look at the data", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    with Catalog(world[0]) as cat:
        dataset = Api(catalog=cat).get_database_by_name("main").get_dataset("acme/cats:latest")
        exec(compile(snippet, "README.md", "exec"), {"dataset": dataset})
    assert Image.open(tmp_path / "sheet.jpg").size[0] == 4 * 256


def test_through_a_server(world, tmp_path):
    catalog, pools = world
    config = ServerConfig(catalog, pools={"acme/pools": pools})
    with live_server(config, public_pools=True) as url:
        out = tmp_path / "remote"
        result = CliRunner().invoke(main, ["render", "main/acme/cats", "train", "--server", url, "--limit", "5",
                                           "-o", str(out)], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        assert sorted(os.listdir(out)) == [f"{i}-cat-{i}.png" for i in range(5)]
        for i in range(5):
            assert local(world, "--ordinal", str(i), "-o", str(tmp_path / f"l{i}.png"))[0] == 0
            assert (out / f"{i}-cat-{i}.png").read_bytes() == (tmp_path / f"l{i}.png").read_bytes()
        result = CliRunner().invoke(main, ["render", "main/acme/cats", "train", "--server", url, "--uid", "cat-6",
                                           "-o", str(tmp_path / "u6.png")], catch_exceptions=False)
        assert result.exit_code == 1 and "failed #6 (cat-6): image missing" in result.stderr
