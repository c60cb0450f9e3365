"""Frame sampling: exact indices against values worked out by hand from the seeds' rules."""

import numpy as np
import pytest

from tvr.processing import (
    order_frame_indices,
    per_second_frame_indices,
    sample_frame_indices,
    segment_middle_frame_indices,
    slice_frame_indices,
)


@pytest.mark.parametrize(
    "total, video_fps, fps, start, end, expected",
    [
        # 29.97 fps is truncated to 29: the first frame of each second is 29 * s, as CLIP4Clip's OpenCV loop
        (100, 29.97, 1, None, None, [0, 29, 58, 87]),
        # 95 frames at 30 fps: ceil(95 / 30) = 4 -> seconds 0..4, reading stops at frame 120 >= 95
        (95, 30.0, 1, None, None, [0, 30, 60, 90]),
        # 3 per second at 30 fps: offsets range(0, 30, 10) = 0, 10, 20; stops at 70 >= 65
        (65, 30.0, 3, None, None, [0, 10, 20, 30, 40, 50, 60]),
        # 2 per second at 25 fps: offsets range(0, 25, 12)[:2] = 0, 12
        (60, 25.0, 2, None, None, [0, 12, 25, 37, 50]),
        # a clip [2, 5] s: seconds 2, 3, 4, 5 inclusive
        (300, 30.0, 1, 2, 5, [60, 90, 120, 150]),
        # a clip ending after the video (10 s) is cut at the video's end
        (300, 30.0, 1, 8, 20, [240, 270]),
        # fractional clip bounds: seconds 1.5 and 2.5 (3.5 > 3.2), frames int(1.5 * 10), int(2.5 * 10)
        (100, 10.0, 1, 1.5, 3.2, [15, 25]),
        # start only: to the end of the video
        (100, 10.0, 1, 7, None, [70, 80, 90]),
    ],
)
def test_per_second_indices(total, video_fps, fps, start, end, expected):
    indices = per_second_frame_indices(total, video_fps, fps=fps, start=start, end=end)
    assert indices.tolist() == expected
    assert indices.dtype == np.int64


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(start=20, end=25), "has no frames"),
        (dict(start=5, end=2), "before its start"),
        (dict(start=-1, end=2), "start must be >= 0"),
        (dict(fps=1.5), "positive integer"),
        (dict(fps=0), "positive integer"),
    ],
)
def test_per_second_rejects_bad_requests(kwargs, message):
    with pytest.raises(ValueError, match=message):
        per_second_frame_indices(300, 30.0, **kwargs)


def test_per_second_rejects_empty_video():
    with pytest.raises(ValueError, match="no frames"):
        per_second_frame_indices(0, 30.0)
    with pytest.raises(ValueError, match="frame rate"):
        per_second_frame_indices(10, 0.0)


@pytest.mark.parametrize(
    "total, num_frames, video_fps, start, end, expected",
    [
        # bounds linspace(0, 100, 5) = 0, 25, 50, 75, 100 -> middles (b_i + b_{i+1} - 1) // 2
        (100, 4, None, None, None, [12, 37, 62, 87]),
        # bounds 0, 2, 5, 7, 10 (2.5 and 7.5 truncated)
        (10, 4, None, None, None, [0, 3, 5, 8]),
        # fewer frames than asked: each frame once
        (3, 8, None, None, None, [0, 1, 2]),
        # clip [2, 4] s at 30 fps = frames 60..120 (61 frames): bounds 0, 15, 30, 45, 61 -> 7, 22, 37, 52 (+60)
        (300, 4, 30.0, 2, 4, [67, 82, 97, 112]),
    ],
)
def test_segment_middle_indices(total, num_frames, video_fps, start, end, expected):
    assert segment_middle_frame_indices(total, num_frames, video_fps, start, end).tolist() == expected


def test_segment_middle_needs_fps_for_a_clip():
    with pytest.raises(ValueError, match="frame rate"):
        segment_middle_frame_indices(100, 4, None, start=1, end=2)


def test_slice_positions():
    per_second = np.arange(0, 300, 30)  # 10 seconds
    assert slice_frame_indices(per_second, 4, "head").tolist() == [0, 30, 60, 90]
    assert slice_frame_indices(per_second, 4, "tail").tolist() == [180, 210, 240, 270]
    # linspace(0, 9, 4) = 0, 3, 6, 9
    assert slice_frame_indices(per_second, 4, "uniform").tolist() == [0, 90, 180, 270]
    assert slice_frame_indices(per_second[:3], 4, "uniform").tolist() == [0, 30, 60]
    with pytest.raises(ValueError, match="slice_framepos"):
        slice_frame_indices(per_second, 4, "middle")


def test_frame_orders():
    indices = np.array([0, 90, 180, 270])
    assert order_frame_indices(indices, "normal").tolist() == [0, 90, 180, 270]
    assert order_frame_indices(indices, "reverse").tolist() == [270, 180, 90, 0]
    shuffled = order_frame_indices(indices, "shuffle", np.random.default_rng(3))
    assert shuffled.tolist() == indices[np.random.default_rng(3).permutation(4)].tolist()
    assert sorted(shuffled.tolist()) == indices.tolist()
    assert order_frame_indices(indices, "shuffle", np.random.default_rng(3)).tolist() == shuffled.tolist()
    with pytest.raises(ValueError, match="frame_order"):
        order_frame_indices(indices, "backwards")


def test_clip4clip_defaults_on_a_30_second_video():
    # 30 s at 30 fps: 30 per-second frames, uniform slice linspace(0, 29, 12) = 0, 2, 5, 7, 10, 13, 15, 18, ...
    assert sample_frame_indices(900, 30.0).tolist() == [0, 60, 150, 210, 300, 390, 450, 540, 630, 690, 780, 870]
    # 899 frames at 29.97 fps: 31 seconds at 29 frames each; linspace(0, 30, 12) = 0, 2, 5, 8, 10, 13, 16, ...
    assert sample_frame_indices(899, 29.97).tolist() == [0, 58, 145, 232, 290, 377, 464, 551, 609, 696, 783, 870]


def test_sample_frame_indices_modes():
    assert sample_frame_indices(300, 30.0, max_frames=4, slice_framepos="head").tolist() == [0, 30, 60, 90]
    assert sample_frame_indices(300, 30.0, num_frames=4, max_frames=4).tolist() == [37, 112, 187, 262]
    assert sample_frame_indices(300, 30.0, max_frames=4, frame_order="reverse").tolist() == [270, 180, 90, 0]
    with pytest.raises(ValueError, match="cannot exceed max_frames"):
        sample_frame_indices(300, 30.0, num_frames=8, max_frames=4)


def test_videos_under_one_fps_keep_clip_times_in_seconds():
    # 0.5 fps: frame k is shown at 2k s; the clip [4, 8] s holds frames 2, 3, 4 (not frames 4-8, i.e. 8-16 s)
    np.testing.assert_array_equal(per_second_frame_indices(20, 0.5, start=4, end=8), [2, 3, 4])
    np.testing.assert_array_equal(per_second_frame_indices(5, 0.5), [0, 1, 2, 3, 4])  # each frame once
    np.testing.assert_array_equal(per_second_frame_indices(3, 0.25, start=5), [1, 2])
    with pytest.raises(ValueError, match="clip \\[30, 40\\] s has no frames"):
        per_second_frame_indices(5, 0.5, start=30, end=40)


@pytest.mark.parametrize("video_fps", [float("inf"), float("nan"), 0.0, -1.0, None])
def test_non_finite_frame_rates_are_named(video_fps):
    with pytest.raises(ValueError, match="frame rate must be a positive finite number"):
        sample_frame_indices(10, video_fps)


def test_zero_frame_array_without_sampling_is_an_error():
    from tvr import TVRVideoProcessor

    processor = TVRVideoProcessor(size=8, crop_size=8, max_frames=4)
    with pytest.raises(ValueError, match="video '#0 .*0 frames"):
        processor([np.zeros((0, 8, 8, 3), np.uint8)], do_sample_frames=False)
