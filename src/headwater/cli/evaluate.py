"""``headwater evaluate``: predictions against a split, COCO's metrics and datatap's, as text, JSON and PNG.

The ground truth is a split of a dataset (local catalog, or ``--server``), streamed; the predictions are
one of three things, told apart by looking:

* a file whose first character is ``{`` — droplets, one per line (JSONL/NDJSON), with confidences;
* a file whose first character is ``[`` — a COCO results file (boxes), its ids read as
  :mod:`headwater.evaluate.coco_results` says (``--coco-ground-truth`` names the COCO file they refer to);
* anything else — a dataset reference ``DB/NS/NAME[:TAG]`` (predictions published as a dataset), whose
  split ``--predictions-split`` (default: SPLIT) is streamed from the same catalog or server.

Image sizes come from the ground-truth droplets' ``metadata`` (width, height), else from the image
headers read through the dataset's pools. The report on stdout is COCOeval's 12 lines and the counts;
``--json OUT`` writes everything (``coco.stats``, per class, confusion matrix, PR curves, what was
evaluated) and ``--plots DIR`` writes ``pr_curves.png`` and ``confusion.png``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import click

from ..catalog import NotFoundError
from .context import open_api
from .options import REPO_REF, HeadwaterCommand, RepoRef, catalog_option, database_option, server_options

__all__ = ["COMMANDS", "evaluate", "stats_text"]

_LINES = [
    ("Average Precision", "(AP)", "0.50:0.95", "all", 100), ("Average Precision", "(AP)", "0.50", "all", 100),
    ("Average Precision", "(AP)", "0.75", "all", 100), ("Average Precision", "(AP)", "0.50:0.95", "small", 100),
    ("Average Precision", "(AP)", "0.50:0.95", "medium", 100), ("Average Precision", "(AP)", "0.50:0.95", "large", 100),
    ("Average Recall", "(AR)", "0.50:0.95", "all", 1), ("Average Recall", "(AR)", "0.50:0.95", "all", 10),
    ("Average Recall", "(AR)", "0.50:0.95", "all", 100), ("Average Recall", "(AR)", "0.50:0.95", "small", 100),
    ("Average Recall", "(AR)", "0.50:0.95", "medium", 100), ("Average Recall", "(AR)", "0.50:0.95", "large", 100),
]


def stats_text(stats: list[float]) -> str:
    """COCOeval's ``summarize`` lines for the 12 stats.

    >>> print(stats_text([0.5] + [-1.0] * 11).splitlines()[0])
     Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500
    """
    return "\n".join(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={md:>3d} ] = {s:0.3f}"
                     for (title, kind, iou, area, md), s in zip(_LINES, stats, strict=True))


def _sniff(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return head[:1].decode("latin-1")


def _lines(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield line


def _split_of(api: Any, ref: RepoRef, split: str) -> Any:
    ds = api.get_database_by_name(ref.database).get_dataset(ref.namespace, ref.name, ref.tag or "latest")
    if split not in ds.splits:
        raise NotFoundError(f"split {split!r} not found in dataset {ds.uid} (splits: "
                            f"{', '.join(sorted(ds.splits)) or 'none'})")
    return ds


@click.command(cls=HeadwaterCommand)
@database_option
@click.argument("dataset", type=REPO_REF)
@click.argument("split")
@click.argument("predictions")
@click.option("--iou-type", type=click.Choice(["bbox", "segm"]), default="bbox", show_default=True,
              help="Match boxes, or segmentation polygons (needs the 'evaluate' extra: pycocotools).")
@click.option("--predictions-split", metavar="SPLIT", help="Split of a predictions dataset [default: SPLIT].")
@click.option("--coco-ground-truth", type=click.Path(exists=True, dir_okay=False),
              help="The COCO ground-truth file a COCO results file's image and category ids refer to.")
@click.option("--iou-threshold", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
              help="IoU for the confusion matrix and the PR curves (datatap's).")
@click.option("--confidence-threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Predictions below it are left out of the confusion matrix (datatap's).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write the whole report as JSON here.")
@click.option("--plots", type=click.Path(file_okay=False), help="Write pr_curves.png and confusion.png here.")
@catalog_option
@server_options
def evaluate(dataset: RepoRef, split: str, predictions: str, iou_type: str, predictions_split: str | None,
             coco_ground_truth: str | None, iou_threshold: float, confidence_threshold: float,
             json_out: str | None, plots: str | None, database: str | None, catalog: str | None,
             server: str | None, api_key: str | None, retry_for: float | None) -> None:
    """Evaluate PREDICTIONS against SPLIT of DATASET: COCO metrics, confusion matrix, PR curves.

    PREDICTIONS is a droplets JSONL file (with confidences), a COCO results JSON file, or a dataset
    reference DB/NS/NAME[:TAG]. Predictions pair with ground truth by image uid, else image path;
    predictions for unknown images and images without predictions are counted in the report.
    """
    import msgspec

    from ..evaluate import evaluate as run_evaluation
    from ..evaluate import image_header_sizes
    from ..evaluate.coco_results import coco_results_droplets

    with open_api(catalog, server, api_key, retry_for=retry_for) as api:
        ds = _split_of(api, dataset, split)
        sizes = image_header_sizes(ds.image_fetcher())
        ground_truth: Any = ds.stream_split(split, raw=True)
        source: dict[str, Any]
        if os.path.isfile(predictions):
            kind = _sniff(predictions)
            if kind == "[":
                from ..droplet import decode_droplet

                with open(predictions, "rb") as f:
                    results = msgspec.json.decode(f.read())
                gt_list = [decode_droplet(line) for line in ground_truth]
                ground_truth = gt_list
                coco_gt = None
                if coco_ground_truth is not None:
                    with open(coco_ground_truth, "rb") as f:
                        coco_gt = msgspec.json.decode(f.read())
                names = sorted(ds.template.classes) or sorted({n for d in gt_list for n in d.classes})
                preds: Any = coco_results_droplets(results, gt_list, names, coco_gt, sizes)
                source = {"kind": "coco-results", "path": os.path.abspath(predictions),
                          "cocoGroundTruth": coco_ground_truth and os.path.abspath(coco_ground_truth)}
            elif kind == "{":
                preds = _lines(predictions)
                source = {"kind": "droplets", "path": os.path.abspath(predictions)}
            else:
                raise click.BadParameter(f"{predictions!r} is neither droplets JSONL nor a COCO results JSON list",
                                         param_hint="PREDICTIONS")
        else:
            try:
                ref = REPO_REF.convert(predictions, None, click.get_current_context())
            except click.BadParameter:
                raise click.BadParameter(f"{predictions!r}: no such file, and not a dataset reference "
                                         "DB/NS/NAME[:TAG]", param_hint="PREDICTIONS") from None
            pred_split = predictions_split or split
            pred_ds = _split_of(api, ref, pred_split)
            preds = pred_ds.stream_split(pred_split, raw=True)
            source = {"kind": "dataset", "dataset": pred_ds.uid, "repository": f"{ref.namespace}/{ref.name}",
                      "split": pred_split}
        ev = run_evaluation(ground_truth, preds, "segm" if iou_type == "segm" else "bbox", image_sizes=sizes,
                            iou_threshold=iou_threshold, confidence_threshold=confidence_threshold)
        report = ev.to_json()
        report["evaluated"] = {"dataset": ds.uid, "database": dataset.database,
                               "repository": f"{dataset.namespace}/{dataset.name}", "tag": dataset.tag or "latest",
                               "split": split, "predictions": source, "iouType": iou_type,
                               "iouThreshold": iou_threshold, "confidenceThreshold": confidence_threshold}
    if json_out is not None:
        with open(json_out, "wb") as f:
            f.write(msgspec.json.encode(report))
    if plots is not None:
        from ..evaluate.plots import draw_confusion, draw_pr_curves

        os.makedirs(plots, exist_ok=True)
        draw_pr_curves(ev.pr_curves, os.path.join(plots, "pr_curves.png"),
                       {name: s[0] for name, s in ev.per_class.items()})
        draw_confusion(ev.confusion, os.path.join(plots, "confusion.png"))
    click.echo(f"evaluated {ds.uid} split {split} ({iou_type}): " + ", ".join(
        f"{k}={v}" for k, v in ev.counts.items() if v))
    click.echo(stats_text(ev.stats))


COMMANDS = [evaluate]
