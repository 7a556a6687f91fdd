"""Identities across frames (greedy IoU / OKS matching) and One-Euro smoothing."""
import numpy as np
import pytest

from vitpose_plugin.apis.tracking import OneEuroFilter, PoseTracker, box_iou


def test_still_keypoints_never_move():
    f = OneEuroFilter(fps=25)
    x = np.array([[12.25, 40.5], [3.0, 7.75]])
    for _ in range(50):
        assert np.array_equal(f(x), x)


def test_smoothing_reduces_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    t = np.arange(200) / 25.0
    truth = np.stack([100 + 40 * t, 80 + 10 * np.sin(t)], -1)  # a walking keypoint
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    f = OneEuroFilter(fps=25)
    smooth = np.stack([f(p) for p in noisy])
    jitter = lambda x: np.abs(np.diff(x, n=2, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.5 * jitter(noisy)
    # and stays with the moving keypoint (after the first second)
    assert np.abs(smooth[25:] - truth[25:]).mean() < np.abs(noisy[25:] - truth[25:]).mean()


def test_identities_follow_boxes_and_new_people_get_new_ids():
    tracker = PoseTracker('iou')
    kpts = lambda n: np.zeros((n, 17, 2))  # noqa: E731
    a = np.array([[0, 0, 100, 200, 1.0]])
    assert tracker.update(a, kpts(1)) == [0]
    b = np.array([[300, 0, 400, 200, 1.0], [5, 0, 105, 200, 1.0]])  # a moved, b appears
    assert tracker.update(b, kpts(2)) == [1, 0]
    assert tracker.update(b[::-1], kpts(2)) == [0, 1]  # order does not matter


def test_ids_are_retired_after_the_gap_and_never_reused():
    tracker = PoseTracker('iou', max_gap=2)
    box = np.array([[0, 0, 100, 200, 1.0]])
    assert tracker.update(box, np.zeros((1, 17, 2))) == [0]
    for _ in range(2):  # unseen for 2 frames: still alive
        tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 2)))
    assert tracker.update(box, np.zeros((1, 17, 2))) == [0]
    for _ in range(3):  # unseen for 3 frames: retired
        tracker.update(np.zeros((0, 5)), np.zeros((0, 17, 2)))
    assert tracker.update(box, np.zeros((1, 17, 2))) == [1]


def test_oks_matching_uses_keypoints():
    sigmas = np.full(4, 0.05)
    tracker = PoseTracker('oks', sigmas=sigmas)
    p = np.array([[[10, 10], [20, 10], [10, 30], [20, 30]]], float)
    boxes = np.array([[0, 0, 40, 40, 1.0]])
    assert tracker.update(boxes, p.copy()) == [0]
    # same boxes, far-away keypoints: another person
    assert tracker.update(boxes, p + 200) == [1]
    with pytest.raises(ValueError, match='sigmas'):
        PoseTracker('oks')


def test_box_iou():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert np.allclose(box_iou(a, b), [[50 / 150, 0.0]])
