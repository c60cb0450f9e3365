"""InternVideo's frame sampling (`frame_sampling="stride"`): index for index against the original decord reader's rule,
and through the video processor (decoded frames read back from colour-coded videos)."""

import numpy as np
import pytest
import torch

from tvr.data.synthetic import write_video
from tvr.processing import TVRVideoProcessor
from tvr.processing.sampling import sample_frame_indices, stride_frame_indices


def original_positions(num_video_frames, fps, max_frames, s=None, e=None, feature_framerate=1):
    """The frame positions of InternVideo's `_get_rawvideo_dec` (dataloader_msrvtt_retrieval.py @ 3965eef), written
    out line by line as the reference (the same code is in every InternVideo retrieval loader)."""
    if s is None:
        start_time, end_time = None, None
    else:
        start_time, end_time = int(s), int(e)
        start_time = start_time if start_time >= 0.0 else 0.0
        end_time = end_time if end_time >= 0.0 else 0.0
        if start_time > end_time:
            start_time, end_time = end_time, start_time
        elif start_time == end_time:
            end_time = start_time + 1
    f_start = 0 if start_time is None else int(start_time * fps)
    f_end = int(min(1000000000 if end_time is None else end_time * fps, num_video_frames - 1))
    sample_fps = int(feature_framerate)
    t_stride = int(round(float(fps) / sample_fps))
    all_pos = list(range(f_start, f_end + 1, t_stride))
    if len(all_pos) > max_frames:
        return [all_pos[_] for _ in np.linspace(0, len(all_pos) - 1, num=max_frames, dtype=int)]
    return all_pos


@pytest.mark.parametrize("total_frames", [1, 2, 29, 30, 31, 100, 299, 300, 301, 901, 4500])
@pytest.mark.parametrize("video_fps", [1.0, 2.5, 8.0, 23.976, 25.0, 29.97, 30.0, 59.94])
@pytest.mark.parametrize("max_frames", [1, 8, 12, 64])
def test_whole_video_indices_equal_the_original(total_frames, video_fps, max_frames):
    expected = original_positions(total_frames, video_fps, max_frames)
    indices = sample_frame_indices(total_frames, video_fps, max_frames=max_frames, frame_sampling="stride")
    assert indices.tolist() == expected
    assert indices.dtype == np.int64


@pytest.mark.parametrize(
    ("start", "end"), [(0, 5), (1.7, 3.2), (2, 2), (2.9, 3.1), (0, 1000), (10, 20), (4.5, 9.99), (0.0, 0.4)]
)
@pytest.mark.parametrize("video_fps", [23.976, 29.97, 30.0])
def test_clip_indices_equal_the_original(start, end, video_fps):
    total_frames = 600
    for max_frames in (4, 12, 64):
        expected = original_positions(total_frames, video_fps, max_frames, start, end)
        indices = sample_frame_indices(
            total_frames, video_fps, max_frames=max_frames, frame_sampling="stride", start=start, end=end
        )
        assert indices.tolist() == expected, (start, end, max_frames)


def test_two_frames_per_second_equal_the_original():
    for video_fps in (25.0, 29.97, 30.0):
        expected = original_positions(300, video_fps, 64, feature_framerate=2)
        assert stride_frame_indices(300, video_fps, fps=2).tolist() == expected


def test_rounded_stride_differs_from_clip4clip_truncation():
    # 29.97 fps: InternVideo rounds the stride to 30, CLIP4Clip truncates the rate to 29
    assert stride_frame_indices(100, 29.97).tolist() == [0, 30, 60, 90]
    assert sample_frame_indices(100, 29.97, max_frames=12).tolist() == [0, 29, 58, 87]
    # 23.976 fps rounds to 24 (CLIP4Clip: 23); the last frame is index total - 1
    assert stride_frame_indices(73, 23.976).tolist() == [0, 24, 48, 72]
    # more positions than max_frames: np.linspace(0, n - 1, max_frames).astype(int) of them
    assert stride_frame_indices(300, 30.0).tolist() == list(range(0, 300, 30))
    assert sample_frame_indices(300, 30.0, max_frames=4, frame_sampling="stride").tolist() == [0, 90, 180, 270]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="stride rounds to 0"):
        stride_frame_indices(10, 0.4)  # the original's range() would fail with step 0
    with pytest.raises(ValueError, match="has no frames"):
        stride_frame_indices(30, 30.0, start=5, end=6)
    with pytest.raises(ValueError, match="frame_sampling must be one of"):
        sample_frame_indices(30, 30.0, frame_sampling="rounded")
    with pytest.raises(ValueError, match="before its start"):
        stride_frame_indices(300, 30.0, start=5, end=2)  # the original swaps a reversed clip


def coded_frames(num_frames: int, size: int = 32) -> np.ndarray:
    """Solid frames whose colour spells the frame index (16 levels per channel)."""
    index = np.arange(num_frames)
    digits = np.stack([index % 16, index // 16 % 16, index // 256], axis=-1)
    colours = (digits * 16 + 8).astype(np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (num_frames, size, size, 3)).copy()


def decoded_codes(pixel_values: torch.Tensor, video_mask: torch.Tensor) -> list[list[int]]:
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])
    rgb = (pixel_values.mean(dim=(-1, -2)) * std + mean) * 255
    digits = torch.div(rgb.round().long(), 16, rounding_mode="floor")
    codes = digits[..., 0] + 16 * digits[..., 1] + 256 * digits[..., 2]
    return [code[mask.bool()].tolist() for code, mask in zip(codes, video_mask)]


def test_processor_option_decodes_the_original_frames(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", coded_frames(100), fps=29.97)
    processor = TVRVideoProcessor(size=32, crop_size=32, max_frames=6, frame_sampling="stride")
    out = processor(path, return_metadata=True)
    assert out["video_metadata"][0].frames_indices == [0, 30, 60, 90]
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 30, 60, 90]]
    assert out["video_mask"].tolist() == [[1, 1, 1, 1, 0, 0]]  # zero-padded to max_frames, as the original
    # the per-call option wins over the processor's; arrays sample by the metadata's frame rate
    out = processor(coded_frames(100), video_metadata={"total_num_frames": 100, "fps": 29.97},
                    frame_sampling="per_second")
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 29, 58, 87]]
    processor.save_pretrained(tmp_path / "saved")
    assert TVRVideoProcessor.from_pretrained(tmp_path / "saved").frame_sampling == "stride"
