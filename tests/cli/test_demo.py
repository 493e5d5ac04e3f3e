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
