"""evaluate(): inputs of every kind, pairing, what is counted, and the refusals."""

from __future__ import annotations

import pytest

from headwater.droplet import ImageAnnotation, encode_droplet
from headwater.evaluate import EvaluationError, ImageSizeError, evaluate


def _d(path: str, boxes: dict[str, list[list[list[float]]]], uid: str | None = None, size: bool = True,
       conf: float | None = None) -> ImageAnnotation:
    image: dict[str, object] = {"paths": [path], **({"uid": uid} if uid else {})}
    box = {"confidence": conf} if conf is not None else {}
    return ImageAnnotation.from_json({
        "image": image, **({"metadata": {"width": 200, "height": 100}} if size else {}),
        "classes": {n: {"instances": [{"boundingBox": {"rectangle": r, **box}} for r in rs]}
                    for n, rs in boxes.items()}})


BOX = [[0.1, 0.1], [0.5, 0.5]]


def test_bytes_str_and_structs_give_the_same_result():
    gt = [_d("a.png", {"cat": [BOX]}), _d("b.png", {"dog": [BOX]})]
    preds = [_d("a.png", {"cat": [BOX]}, conf=0.9), _d("b.png", {"cat": [BOX]}, conf=0.8)]
    as_structs = evaluate(gt, preds)
    as_bytes = evaluate([encode_droplet(d) for d in gt], [encode_droplet(d) for d in preds])
    as_str = evaluate([encode_droplet(d).decode() for d in gt], iter([encode_droplet(d) for d in preds]))
    assert as_structs.stats == as_bytes.stats == as_str.stats
    assert as_structs.confusion.matrix.tolist() == [[0, 0, 0], [0, 1, 0], [0, 1, 0]]  # the dog seen as a cat
    assert as_structs.per_class["dog"][0] == 0 and as_structs.per_class["cat"][0] > 0.99


def test_pairing_by_uid_before_path():
    gt = [_d("a.png", {"cat": [BOX]}, uid="x"), _d("b.png", {"cat": [BOX]}, uid="y")]
    preds = [_d("b.png", {"cat": [BOX]}, uid="x", conf=1.0)]  # uid x wins over path b.png
    ev = evaluate(gt, preds)
    assert ev.counts["imagesWithoutPredictions"] == 1 and ev.stats[8] == pytest.approx(0.5)


def test_no_ground_truth_instances_gives_minus_one_and_counts():
    ev = evaluate([_d("a.png", {})], [_d("a.png", {"cat": [BOX]}, conf=0.5), _d("z.png", {"cat": [BOX, BOX]})])
    assert ev.stats == [-1.0] * 12
    assert ev.counts["unknownImageDroplets"] == 1 and ev.counts["unknownImagePredictions"] == 2
    assert ev.confusion.matrix.tolist() == [[0, 1], [0, 0]]


def test_refusals():
    with pytest.raises(ImageSizeError, match="no pixel size"):
        evaluate([_d("a.png", {"cat": [BOX]}, size=False)], [])
    assert evaluate([_d("a.png", {"cat": [BOX]}, size=False)], [], image_sizes={"a.png": (200, 100)}).stats[0] == 0
    with pytest.raises(EvaluationError, match="appears twice"):
        evaluate([_d("a.png", {}), _d("a.png", {})], [])
    with pytest.raises(EvaluationError, match="iou_type"):
        evaluate([_d("a.png", {})], [], iou_type="keypoints")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="no image"):
        evaluate([], [])
    with pytest.raises(EvaluationError, match="expected a droplet"):
        evaluate([42], [])  # type: ignore[list-item]
