"""``headwater evaluate`` on a real catalog: droplets JSONL, a predictions dataset, a COCO results file."""

from __future__ import annotations

import json
import os

import msgspec
import pytest
from click.testing import CliRunner
from PIL import Image

from headwater.cli import main
from headwater.droplet import ImageAnnotation, encode_droplet
from tests.evaluate.cases import make_case
from tests.support.coco_reference import coco_files, pycocotools_stats

pytest.importorskip("pycocotools")


def _load(path) -> dict:
    with open(path) as f:
        return json.load(f)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _write(path: str, droplets: list[ImageAnnotation]) -> str:
    with open(path, "wb") as f:
        f.write(b"".join(encode_droplet(d) + b"\n" for d in droplets))
    return path


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """gt (with image sizes in metadata), gt-bare (sizes only in the image headers), preds; and the files."""
    root = str(tmp_path_factory.mktemp("evaluate_cli"))
    gt, preds = make_case(5, n_images=12, image_uids=True)
    os.makedirs(os.path.join(root, "img"))
    for d in gt:
        assert d.metadata is not None
        Image.new("L", (d.metadata["width"], d.metadata["height"])).save(os.path.join(root, d.image.paths[0]))
    bare = [ImageAnnotation(d.image, d.classes) for d in gt]
    cat = os.path.join(root, "catalog.sqlite")
    for name, rows, extra in (("gt", gt, ["--create-database"]), ("gt-bare", bare, []), ("preds", preds, [])):
        code, _, err = run("publish", _write(os.path.join(root, f"{name}.jsonl"), rows), "--repo",
                           f"main/acme/{name}", "--catalog", cat, "-q", *extra)
        assert code == 0, err
    return {"root": root, "catalog": cat, "gt": gt, "preds": preds,
            "preds_path": os.path.join(root, "preds.jsonl")}


def test_droplets_jsonl_equal_pycocotools_with_report_and_plots(catalog, tmp_path):
    out, plots = str(tmp_path / "report.json"), str(tmp_path / "plots")
    code, stdout, err = run("evaluate", "main/acme/gt", "train", catalog["preds_path"], "--catalog",
                            catalog["catalog"], "--json", out, "--plots", plots)
    assert code == 0, err
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in stdout
    report = _load(out)
    ref = pycocotools_stats(*coco_files(catalog["gt"], catalog["preds"]))
    assert report["coco"]["stats"] == pytest.approx(ref, abs=1e-12, rel=0)
    assert report["evaluated"]["split"] == "train" and report["evaluated"]["predictions"]["kind"] == "droplets"
    assert report["counts"]["groundTruthImages"] == 12 and report["counts"]["unknownImageDroplets"] == 0
    assert set(report["perClass"]) == {"bird", "cat", "dog", "ghost", "shy"}
    cm = report["confusion"]
    assert cm["classes"][0] == "__background__" and len(cm["matrix"]) == 6
    gt_total = sum(len(c.instances) for d in catalog["gt"] for c in d.classes.values())
    assert sum(sum(row) for row in cm["matrix"][1:]) == gt_total  # every ground truth is in one row cell
    curve = next(c for c in report["prCurves"]["curves"] if c["class"] == "cat")
    assert curve["maxF1"]["f1"] > 0 and len(curve["precision"]) == len(curve["recall"]) > 1
    for name in ("pr_curves.png", "confusion.png"):
        with Image.open(os.path.join(plots, name)) as img:
            assert img.format == "PNG" and img.size[0] > 100


def test_sizes_from_image_headers_and_predictions_as_a_dataset(catalog, tmp_path):
    with_meta = run("evaluate", "main/acme/gt", "train", "main/acme/preds", "--catalog", catalog["catalog"],
                    "--json", str(tmp_path / "a.json"))
    from_headers = run("evaluate", "main/acme/gt-bare", "train", catalog["preds_path"], "--catalog",
                       catalog["catalog"], "--json", str(tmp_path / "b.json"))
    assert with_meta[0] == 0 and from_headers[0] == 0, with_meta[2] + from_headers[2]
    a, b = (_load(tmp_path / n) for n in ("a.json", "b.json"))
    ref = pycocotools_stats(*coco_files(catalog["gt"], catalog["preds"]))
    assert a["coco"]["stats"] == pytest.approx(ref, abs=1e-12, rel=0) == b["coco"]["stats"]
    assert a["evaluated"]["predictions"]["kind"] == "dataset"


def test_coco_results_file_by_position_and_by_file_name(catalog, tmp_path):
    gt_doc, results = coco_files(catalog["gt"], catalog["preds"])
    (tmp_path / "results.json").write_bytes(msgspec.json.encode(results))
    for name, image in enumerate(gt_doc["images"]):  # the COCO file lists its images in another order
        image["id"] = 1000 - name
    renumbered = [dict(r, image_id=1001 - r["image_id"]) for r in results]
    (tmp_path / "gt.json").write_bytes(msgspec.json.encode(gt_doc))
    (tmp_path / "results2.json").write_bytes(msgspec.json.encode(renumbered))
    ref = pycocotools_stats(*coco_files(catalog["gt"], catalog["preds"]))
    for extra in ([str(tmp_path / "results.json")],
                  [str(tmp_path / "results2.json"), "--coco-ground-truth", str(tmp_path / "gt.json")]):
        code, _, err = run("evaluate", "main/acme/gt", "train", *extra, "--catalog", catalog["catalog"],
                           "--json", str(tmp_path / "r.json"))
        assert code == 0, err
        stats = _load(tmp_path / "r.json")["coco"]["stats"]
        assert stats == pytest.approx(ref, abs=1e-9, rel=0)  # pixels → normalised → pixels rounds


def test_unknown_images_and_missing_predictions_are_counted(catalog, tmp_path):
    stray = ImageAnnotation.from_json(
        {"image": {"paths": ["elsewhere.png"], "uid": "nope"},
         "classes": {"cat": {"instances": [{"boundingBox": {"rectangle": [[0, 0], [1, 1]], "confidence": 1}}]}}})
    preds = [*catalog["preds"][2:], stray]
    path = _write(str(tmp_path / "p.jsonl"), preds)
    code, _, err = run("evaluate", "main/acme/gt", "train", path, "--catalog", catalog["catalog"], "--json",
                       str(tmp_path / "r.json"))
    assert code == 0, err
    counts = _load(tmp_path / "r.json")["counts"]
    assert counts["unknownImageDroplets"] == 1 and counts["unknownImagePredictions"] == 1
    assert counts["imagesWithoutPredictions"] == 2


@pytest.mark.parametrize("args,message", [
    (["main/acme/gt", "train", "nope"], "no such file, and not a dataset reference"),
    (["main/acme/gt", "valid", "main/acme/preds"], "split 'valid' not found"),
    (["main/acme/gt", "train", "main/acme/missing"], "not found"),
])
def test_bad_input_is_one_error_line(catalog, args, message):
    code, _, err = run("evaluate", *args, "--catalog", catalog["catalog"])
    assert code == 2 and message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error:")


def test_two_prediction_droplets_for_one_image_is_an_error(catalog, tmp_path):
    path = _write(str(tmp_path / "p.jsonl"), catalog["preds"][:2] + catalog["preds"][:1])
    code, _, err = run("evaluate", "main/acme/gt", "train", path, "--catalog", catalog["catalog"])
    assert code == 2 and "two droplets for image 'i0'" in err


def test_against_a_server(catalog, tmp_path):
    from headwater.server.app import ServerConfig
    from tests.support.servers import live_server, make_user

    key = make_user(catalog["catalog"], "alice")
    with live_server(ServerConfig(catalog=catalog["catalog"])) as url:
        code, _, err = run("evaluate", "main/acme/gt", "train", "main/acme/preds", "--server", url,
                           "--api-key", key, "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    ref = pycocotools_stats(*coco_files(catalog["gt"], catalog["preds"]))
    assert _load(tmp_path / "r.json")["coco"]["stats"] == pytest.approx(ref, abs=1e-12, rel=0)
