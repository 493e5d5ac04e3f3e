"""Every COCO stat equals pycocotools 2.0.11's (to 1e-12) on the same data converted to COCO files."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.evaluate import evaluate
from tests.evaluate.cases import make_case
from tests.support.coco_reference import coco_files, pycocotools_stats

pytest.importorskip("pycocotools")


def _check(gt, preds, iou_type="bbox"):
    ours = evaluate(gt, preds, iou_type=iou_type, batch_images=5)
    ref = pycocotools_stats(*coco_files(gt, preds, iou_type), iou_type=iou_type)
    assert ours.stats == pytest.approx(ref, abs=1e-12, rel=0)
    return ours, ref


@pytest.mark.parametrize("seed", range(6))
def test_bbox_stats_equal_pycocotools(seed):
    gt, preds = make_case(seed, n_images=15)
    ours, ref = _check(gt, preds)
    assert ref[0] > 0.05  # a case with real matches, not a trivial zero
    assert ours.counts["predictionsBeyondMaxDetections"] > 0  # the image with > 100 cats was cut as COCO does


def test_the_fixture_covers_the_corners():
    gt, preds = make_case(0, n_images=15)
    ours = evaluate(gt, preds)
    assert ours.per_class["shy"][0] >= 0 and all(s == -1 for s in ours.per_class["ghost"])  # no GT: -1
    assert not any("shy" in d.classes for d in preds)
    assert any(not d.classes for d in gt)  # images without ground truth
    assert all(s > -1 for s in ours.stats[3:6])  # small, medium and large ground truth all present
    scores = [i.bounding_box.confidence for d in preds for c in d.classes.values() for i in c.instances
              if i.bounding_box is not None]
    assert len(scores) > len(set(scores)) + 100  # many ties


@pytest.mark.parametrize("seed", range(3))
def test_segm_stats_equal_pycocotools(seed):
    gt, preds = make_case(100 + seed, n_images=12, iou_type="segm")
    _, ref = _check(gt, preds, "segm")
    assert ref[0] > 0.05


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 8), st.sampled_from([0, 0, 105]))
def test_random_cases_equal_pycocotools(seed, n_images, many):
    gt, preds = make_case(seed, n_images=n_images, many_on_one=many)
    if not any(d.classes for d in gt):
        return
    _check(gt, preds)


def test_a_pr_threshold_outside_cocos_changes_no_stat():
    gt, preds = make_case(4, n_images=15)
    ours = evaluate(gt, preds, iou_threshold=0.62)  # matched at an 11th threshold for the PR curves
    assert ours.stats == pytest.approx(pycocotools_stats(*coco_files(gt, preds)), abs=1e-12, rel=0)
    assert ours.pr_iou_threshold == 0.62 and ours.to_json()["prCurves"]["iouThreshold"] == 0.62
