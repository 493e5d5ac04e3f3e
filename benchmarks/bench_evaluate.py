"""Benchmark: COCO box metrics — headwater's ``evaluate`` against pycocotools 2.0.11 and faster-coco-eval 1.8.0.

What is measured
    Wall-clock seconds from files on disk to the 12 COCO ``stats``, each side in a fresh subprocess (so
    its peak memory, ``ru_maxrss``, is its own):

    * headwater: end to end as a user runs it — the ground-truth and prediction droplets (JSONL, one
      droplet per line, datatap's wire format) read as lines and given to
      :func:`headwater.evaluate.evaluate` (decoding, pixel boxes, matching, COCO accumulation, datatap's
      confusion matrix and PR curves), then the JSON report written;
    * pycocotools 2.0.11: ``COCO(gt.json)``, ``loadRes(results.json)``, ``COCOeval(…, "bbox")``
      ``evaluate/accumulate/summarize``;
    * faster-coco-eval 1.8.0 (in its own peer venv, ``tests/support/peers.py``): the same with its
      ``COCO`` and ``COCOeval_faster``.

    The COCO files are the droplets converted by the rules of :mod:`headwater.evaluate.evaluation`
    (pixel boxes by :func:`~headwater.evaluate.pixel_box`, images in ground-truth order, categories by
    name), so all three compute on the same numbers; the script asserts that the three ``stats`` agree
    (headwater vs pycocotools to 1e-12; faster-coco-eval is reported beside them).

Why
    Issue 10's goal: ≥ 4× pycocotools and at least as fast as faster-coco-eval, identical stats, peak
    memory no higher than faster-coco-eval's.

Data (made by this script, fixed seed)
    COCO val2017's size: ``--images`` 5,000 images of 5 usual sizes, ~7.3 ground-truth boxes an image
    (~36k) over 80 classes (one class 30 %, as "person"), sizes log-uniform from 6 to 500 px so that
    small/medium/large all occur; 100 detections an image (500k): 1–4 jittered copies of each ground
    truth (the right class 90 % of the time) and random boxes, scores rounded to 3 decimals (ties).

Run::

    .venv/bin/python benchmarks/bench_evaluate.py [--images 5000] [--runs 3] [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from _common import Spread, add_runs_option, alternate, describe_machine, ratio_line, spread_table

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository root: tests.support

SIZES = [(640, 480), (640, 427), (480, 640), (500, 375), (640, 640)]
N_CLASSES = 80


def _names() -> list[str]:
    return [f"class{k:02d}" for k in range(N_CLASSES)]


def _droplet(path: str, w: int, h: int, names: list[str], rect_array: np.ndarray, cls_array: np.ndarray,
             score_array: np.ndarray | None) -> tuple[bytes, list[Any]]:
    """One droplet's JSON line, and its (class, box) in the order COCO rows are written (class by class)."""
    import msgspec

    classes: dict[str, Any] = {}
    order = []
    rects, cls = rect_array.tolist(), cls_array.tolist()
    score = None if score_array is None else score_array.tolist()
    for j in range(len(rects)):
        box: dict[str, Any] = {"rectangle": [rects[j][:2], rects[j][2:]]}
        if score is not None:
            box["confidence"] = score[j]
        classes.setdefault(names[cls[j]], {"instances": [], "multiInstances": []})["instances"].append(
            {"boundingBox": box})
    for name, ca in classes.items():
        for inst in ca["instances"]:
            order.append((name, inst["boundingBox"]))
    line = msgspec.json.encode({"kind": "ImageAnnotation", "image": {"paths": [path]}, "classes": classes,
                                "metadata": {"width": w, "height": h}})
    return line, order


def make_data(directory: str, n_images: int, seed: int) -> dict[str, int]:
    """Write gt.jsonl, preds.jsonl (droplets) and gt.json, results.json (COCO) into ``directory``."""
    import msgspec

    rng = np.random.default_rng(seed)
    names = _names()
    weights = np.full(N_CLASSES, 0.7 / (N_CLASSES - 1))
    weights[0] = 0.3
    gt_lines: list[bytes] = []
    pred_lines: list[bytes] = []
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    n_gt = n_det = 0
    for i in range(n_images):
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        path = f"pool://val/{i:012d}.jpg"
        images.append({"id": i + 1, "width": w, "height": h, "file_name": path})
        k = int(rng.poisson(7.3))
        side = np.exp(rng.uniform(np.log(6), np.log(500), k))
        aspect = np.exp(rng.uniform(np.log(0.5), np.log(2), k))
        bw = np.minimum(side * np.sqrt(aspect), float(w - 1))
        bh = np.minimum(side / np.sqrt(aspect), float(h - 1))
        x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        gt_rects = np.round(np.stack([x1 / w, y1 / h, (x1 + bw) / w, (y1 + bh) / h], axis=1), 6)
        gt_cls = rng.choice(N_CLASSES, size=k, p=weights)
        # detections: jittered copies of the ground truth, then random boxes, 100 in all
        copies = rng.integers(1, 5, size=k)
        src = np.repeat(np.arange(k), copies)[:100]
        jit = rng.normal(0, 0.08, size=(len(src), 4)) * np.repeat(gt_rects[src, 2:] - gt_rects[src, :2], 2, axis=0
                                                                   ).reshape(-1, 2, 2).transpose(0, 2, 1).reshape(-1, 4)
        det_rects = gt_rects[src] + jit
        det_cls = np.where(rng.random(len(src)) < 0.9, gt_cls[src], rng.integers(N_CLASSES, size=len(src)))
        det_score = rng.uniform(0.3, 1.0, len(src))
        n_rand = 100 - len(src)
        rs = np.exp(rng.uniform(np.log(0.02), np.log(0.6), (n_rand, 2)))
        rx, ry = rng.uniform(0, 1 - rs[:, 0]), rng.uniform(0, 1 - rs[:, 1])
        det_rects = np.r_[det_rects, np.stack([rx, ry, rx + rs[:, 0], ry + rs[:, 1]], axis=1)]
        det_cls = np.r_[det_cls, rng.integers(N_CLASSES, size=n_rand)]
        det_score = np.round(np.concatenate([det_score, rng.uniform(0.0, 0.6, n_rand)]), 3)
        det_rects = np.round(np.clip(det_rects, 0, 1), 6)
        ok = (det_rects[:, 2] > det_rects[:, 0]) & (det_rects[:, 3] > det_rects[:, 1])
        det_rects, det_cls, det_score = det_rects[ok], det_cls[ok], det_score[ok]

        line, gt_order = _droplet(path, w, h, names, gt_rects, gt_cls, None)
        gt_lines.append(line)
        for name, box in gt_order:
            (a, b), (c, d) = box["rectangle"]
            px = [a * w, b * h, (c - a) * w, (d - b) * h]  # headwater.evaluate.pixel_box
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": names.index(name) + 1,
                         "bbox": px, "area": px[2] * px[3], "iscrowd": 0})
        line, det_order = _droplet(path, w, h, names, det_rects, det_cls, det_score)
        pred_lines.append(line)
        for name, box in det_order:
            (a, b), (c, d) = box["rectangle"]
            results.append({"image_id": i + 1, "category_id": names.index(name) + 1,
                            "bbox": [a * w, b * h, (c - a) * w, (d - b) * h], "score": box["confidence"]})
        n_gt += len(gt_rects)
        n_det += len(det_rects)
    with open(os.path.join(directory, "gt.jsonl"), "wb") as f:
        f.write(b"\n".join(gt_lines) + b"\n")
    with open(os.path.join(directory, "preds.jsonl"), "wb") as f:
        f.write(b"\n".join(pred_lines) + b"\n")
    with open(os.path.join(directory, "gt.json"), "wb") as f:
        f.write(msgspec.json.encode({"images": images, "annotations": anns,
                                     "categories": [{"id": k + 1, "name": n} for k, n in enumerate(names)]}))
    with open(os.path.join(directory, "results.json"), "wb") as f:
        f.write(msgspec.json.encode(results))
    return {"images": n_images, "groundTruth": n_gt, "detections": n_det}


# -- the sides (each runs in a subprocess: `bench_evaluate.py --side NAME DIR`) -----------------------------
def _side_headwater(directory: str) -> list[float]:
    import msgspec

    from headwater.evaluate import evaluate

    with open(os.path.join(directory, "gt.jsonl"), "rb") as f:
        gt = f.read().splitlines()
    with open(os.path.join(directory, "preds.jsonl"), "rb") as f:
        preds = f.read().splitlines()
    ev = evaluate(gt, preds)
    with open(os.path.join(directory, "report.json"), "wb") as f:
        f.write(msgspec.json.encode(ev.to_json()))
    return ev.stats


def _side_coco(directory: str, faster: bool) -> list[float]:
    import contextlib
    import io

    if faster:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(os.path.join(directory, "gt.json"))
        dt = gt.loadRes(os.path.join(directory, "results.json"))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(s) for s in ev.stats]


def _run_side(name: str, directory: str) -> None:
    start = time.perf_counter()
    stats = _side_headwater(directory) if name == "headwater" else _side_coco(directory, name == "faster-coco-eval")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak": peak, "stats": stats}))


def _python_of(name: str) -> str:
    if name != "faster-coco-eval":
        return sys.executable
    from tests.support.peers import peer_python

    return peer_python("faster-coco-eval", ["faster-coco-eval==1.8.0"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", help="make (or reuse) the data in this folder instead of a temp dir")
    parser.add_argument("--side", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--sides", default="headwater,pycocotools,faster-coco-eval")
    add_runs_option(parser)
    args = parser.parse_args()
    if args.side:
        _run_side(*args.side)
        return
    print(describe_machine())
    directory = args.keep or tempfile.mkdtemp(prefix="bench_evaluate_")
    os.makedirs(directory, exist_ok=True)
    if not os.path.exists(os.path.join(directory, "results.json")):
        start = time.perf_counter()
        sizes = make_data(directory, args.images, args.seed)
        print(f"data: {sizes} made in {time.perf_counter() - start:.1f} s in {directory}")
    sides = args.sides.split(",")
    pythons = {name: _python_of(name) for name in sides}
    outcomes: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}

    def runner(name: str) -> Any:
        def run() -> float:
            done = subprocess.run([pythons[name], os.path.abspath(__file__), "--side", name, directory],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr}")
            outcome = json.loads(done.stdout.strip().splitlines()[-1])
            outcomes[name].append(outcome)
            return float(outcome["seconds"])
        return run

    times = alternate({name: runner(name) for name in sides}, args.runs, log=print)
    print(spread_table({name: Spread(t) for name, t in times.items()}, "seconds"))
    for name in sides:
        peaks = Spread([o["peak"] / 2 ** 20 for o in outcomes[name]])
        print(f"{name}: peak memory {peaks.median:,.0f} MiB ({peaks.min:,.0f}–{peaks.max:,.0f})")
    ref = outcomes.get("pycocotools")
    ours = outcomes.get("headwater")
    if ref and ours:
        diff = max(abs(a - b) for a, b in zip(ours[0]["stats"], ref[0]["stats"], strict=True))
        print(f"stats: headwater vs pycocotools, largest difference {diff:.3g}")
        assert diff <= 1e-12, (ours[0]["stats"], ref[0]["stats"])
    fast = outcomes.get("faster-coco-eval")
    if fast and ref:
        diff = max(abs(a - b) for a, b in zip(fast[0]["stats"], ref[0]["stats"], strict=True))
        print(f"stats: faster-coco-eval vs pycocotools, largest difference {diff:.3g}")
    if ours:
        print("stats:", [round(s, 6) for s in ours[0]["stats"]])
    for peer in ("pycocotools", "faster-coco-eval"):
        if peer in times and "headwater" in times:
            print(ratio_line(f"headwater vs {peer}", times[peer], times["headwater"])[1])


if __name__ == "__main__":
    main()
