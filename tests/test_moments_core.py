"""The shared moment primitives: window planning (tvr.processing.windows) and temporal IoU / NMS / metrics
(tvr.evaluation.moments), on hand-computed cases."""

import numpy as np
import pytest

from tvr.evaluation.moments import moment_metrics, temporal_iou, temporal_nms
from tvr.processing.windows import parse_window_scales, plan_windows, video_duration


def test_windows_step_by_stride_and_end_at_the_video_end():
    assert plan_windows(20.0, [8.0], stride=0.5) == [(0.0, 8.0), (4.0, 12.0), (8.0, 16.0), (12.0, 20.0)]
    # 10 s video, 4 s windows, stride 0.5: 0,2,4 then the tail window 6-10; a 16 s scale covers the whole video
    assert plan_windows(10.0, [4.0, 16.0], stride=0.5) == [(0.0, 4.0), (0.0, 10.0), (2.0, 6.0), (4.0, 8.0),
                                                           (6.0, 10.0)]
    # stride 1: no overlap, the tail window moved back to end at the end
    assert plan_windows(9.0, [4.0], stride=1.0) == [(0.0, 4.0), (4.0, 8.0), (5.0, 9.0)]


@pytest.mark.parametrize("stride", [0, -0.5, 1.5])
def test_a_stride_outside_zero_one_is_named(stride):
    with pytest.raises(ValueError, match=f"window stride must be in \\(0, 1\\].*got {stride}"):
        plan_windows(10.0, [4.0], stride=stride)


def test_window_scales_in_seconds_or_clip_multiples():
    assert parse_window_scales("16, 4,8,4") == [4.0, 8.0, 16.0]
    assert parse_window_scales("1x,2x", clip_seconds=6.0) == [6.0, 12.0]
    with pytest.raises(ValueError, match="window scale 'abc' is not a number"):
        parse_window_scales("4,abc")
    with pytest.raises(ValueError, match="'2x' is a multiple of the clip length"):
        parse_window_scales("2x")
    with pytest.raises(ValueError, match="'0' must be positive"):
        parse_window_scales("0,4")


def test_temporal_iou_on_hand_computed_spans():
    iou = temporal_iou([[0, 10], [5, 15]], [[5, 10], [20, 30], [0, 10]])
    np.testing.assert_allclose(iou, [[0.5, 0.0, 1.0], [5 / 10, 0.0, 5 / 15]])


def test_nms_keeps_the_best_non_overlapping_spans():
    spans = [[0, 10], [1, 11], [20, 30], [5, 15], [21, 29]]
    scores = [0.9, 0.95, 0.5, 0.7, 0.6]
    # best [1,11]; [0,10] IoU 9/11 suppressed; [5,15] IoU 6/14=0.43 < 0.5 kept; [21,29] kept; [20,30] IoU 0.8 gone
    assert temporal_nms(spans, scores, iou_threshold=0.5) == [1, 3, 4]
    assert temporal_nms(spans, scores, iou_threshold=0.5, top_k=2) == [1, 3]
    assert temporal_nms(spans, scores, iou_threshold=0.4) == [1, 4]


def test_moment_metrics_count_recall_at_iou_and_mean_iou():
    truth = [(0, 10), (10, 20)]
    predictions = [[(0, 8), (0, 10)],      # top-1 IoU 0.8, top-2 1.0
                   [(0, 5), (12, 20)]]     # top-1 IoU 0, top-2 0.8
    metrics = moment_metrics(predictions, truth, recall_at=(1, 5), iou_thresholds=(0.5, 0.9))
    assert metrics == pytest.approx({"R@1_IoU0.5": 50.0, "R@1_IoU0.9": 0.0, "R@5_IoU0.5": 100.0,
                                     "R@5_IoU0.9": 50.0, "mIoU": 40.0})


def test_video_duration_reads_the_header(tmp_path):
    from tvr.data.synthetic import write_video

    frames = np.zeros((25, 16, 16, 3), dtype=np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, fps=10)
    assert video_duration(path) == pytest.approx(2.5)


def test_encode_windows_encodes_each_planned_window_as_a_clip(tmp_path):
    import torch

    from model_testers import RetrievalModelTester
    from tvr.data.synthetic import write_video
    from tvr.modeling.outputs import concat_encodings
    from tvr.processing import TVRVideoProcessor
    from tvr.processing.windows import encode_windows

    rng = np.random.default_rng(0)
    long_video = write_video(tmp_path / "long.mp4", rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8), fps=4)
    short_video = write_video(tmp_path / "short.mp4", rng.integers(0, 255, (12, 16, 16, 3), dtype=np.uint8), fps=4)
    missing = str(tmp_path / "missing.mp4")
    processor = TVRVideoProcessor(size=16, crop_size=16, max_frames=4)
    model = RetrievalModelTester(sim_header="meanP").model().eval()
    windowed = encode_windows(model, processor, [long_video, missing, short_video], [4.0, 8.0], stride=0.5,
                              batch_size=3)
    # 10 s: 4 s windows at 0,2,4,6 (the last one 6-10), 8 s windows 0-8 and 2-10; 3 s: the whole video once
    assert windowed.rows == [(0, 0.0, 4.0), (0, 0.0, 8.0), (0, 2.0, 6.0), (0, 2.0, 10.0), (0, 4.0, 8.0),
                             (0, 6.0, 10.0), (2, 0.0, 3.0)]
    assert list(windowed.failed) == [missing] and "not found" in windowed.failed[missing]
    encoding = concat_encodings(windowed.encodings)
    inputs = processor([long_video, short_video], start=[2.0, 0.0], end=[10.0, 3.0], return_tensors="pt")
    with torch.no_grad():
        expected = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"]).video_embeds
    torch.testing.assert_close(encoding.video_embeds[[3, 6]], expected, atol=1e-5, rtol=1e-5)
