"""``headwater demo``: it writes only into a folder it owns, and refuses bad --images values by name."""

from __future__ import annotations

import os

from click.testing import CliRunner

from headwater.cli import main

DEMO_MARKER = ".headwater-demo"  # headwater.cli.demo.DEMO_MARKER, spelled out so this file also runs on main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_demo_refuses_a_folder_it_did_not_write(tmp_path):
    work = tmp_path / "mine"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    (work / "images").mkdir()  # even a name the demo uses: not the demo's without the marker
    (work / "images" / "holiday.png").write_bytes(b"png")
    code, out = run("demo", "--dir", str(work), "--images", "3")
    assert code == 2, out
    assert "error:" in out and "not empty" in out and DEMO_MARKER in out and "Traceback" not in out
    assert (work / "thesis.tex").read_text() == "years of work"
    assert (work / "images" / "holiday.png").read_bytes() == b"png"
    assert sorted(os.listdir(work)) == ["images", "thesis.tex"]
    file_dir = tmp_path / "a-file"
    file_dir.write_text("x")
    code, out = run("demo", "--dir", str(file_dir), "--images", "3")
    assert code == 2 and file_dir.read_text() == "x"


def test_demo_reruns_clear_only_what_the_demo_wrote(tmp_path):
    work = tmp_path / "demo-output"
    code, out = run("demo", "--dir", str(work), "--images", "3")
    assert code == 0, out
    assert "done:" in out and (work / DEMO_MARKER).is_file()
    (work / "notes.txt").write_text("my notes beside the demo")
    (work / "downloaded" / "stale.bin").write_bytes(b"old")
    code, out = run("demo", "--dir", str(work), "--images", "2")
    assert code == 0, out
    assert (work / "notes.txt").read_text() == "my notes beside the demo"
    assert not (work / "downloaded" / "stale.bin").exists()  # the demo's own folder was cleared
    assert len([n for n in os.listdir(work / "images") if n.endswith(".png")]) == 2


def test_demo_empty_folder_is_taken(tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    code, out = run("demo", "--dir", str(work), "--images", "2")
    assert code == 0, out


def test_demo_rejects_too_few_images_with_a_message(tmp_path):
    for images in ("1", "0", "-5"):
        code, out = run("demo", "--dir", str(tmp_path / "d"), "--images", images)
        assert code == 2, out
        assert "--images" in out and "2" in out and "Traceback" not in out and "IndexError" not in out
    assert not (tmp_path / "d").exists()


def test_demo_ends_with_the_command_that_serves_it(tmp_path):
    import shlex

    from starlette.testclient import TestClient

    from headwater.server.app import ServerConfig, create_app

    work = tmp_path / "demo output"
    code, out = run("demo", "--dir", str(work), "--images", "12")
    assert code == 0, out
    lines = out.strip().splitlines()
    command, url = shlex.split(lines[-2].split(": ", 1)[1]), lines[-1].split("open ", 1)[1]
    assert command[1:] == ["serve", "--catalog", str(work / "catalog.sqlite"), "--port", "8000"]
    assert url == "http://127.0.0.1:8000/view/demo/shapes/boxes"
    # what that command serves: the demo's dataset, visible without signing in, thumbnails that decode
    client = TestClient(create_app(ServerConfig(catalog=command[3])))
    page = client.get(url.removeprefix("http://127.0.0.1:8000"))
    assert page.status_code == 200 and "shapes/boxes" in page.text
    grid = client.get(page.text.split('class="split" href="')[1].split('"')[0])
    thumbs = grid.text.count('class="thumb"')
    assert thumbs > 0
    thumb = client.get(grid.text.split('<img class="thumb" src="')[1].split('"')[0])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert "x-headwater-problem" not in thumb.headers
