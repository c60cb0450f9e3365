"""TVRVideoProcessor: which frames it decodes (read back from colour-coded videos), pixels vs the original
transforms, padding / masking, input types, errors, save / load."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from transformers import AutoVideoProcessor, PretrainedConfig

from tvr.data.synthetic import write_video
from tvr.processing import TVRVideoProcessor, order_frame_indices

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711])


def coded_frames(num_frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Solid frames whose colour spells the frame index: 16 levels per channel, low digit in red."""
    index = np.arange(num_frames)
    digits = np.stack([index % 16, index // 16 % 16, index // 256], axis=-1)
    colours = (digits * 16 + 8).astype(np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (num_frames, height, width, 3)).copy()


def decoded_codes(pixel_values: torch.Tensor, video_mask: torch.Tensor) -> list[list[int]]:
    """Frame indices read back from processed (normalised) coded frames, real frames only."""
    rgb = (pixel_values.mean(dim=(-1, -2)) * CLIP_STD + CLIP_MEAN) * 255  # (batch, frames, 3)
    digits = torch.div(rgb.round().long(), 16, rounding_mode="floor")
    codes = digits[..., 0] + 16 * digits[..., 1] + 256 * digits[..., 2]
    return [code[mask.bool()].tolist() for code, mask in zip(codes, video_mask)]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {
        "ntsc": write_video(folder / "ntsc.mp4", coded_frames(100), fps=29.97),  # 3.3 s at 29.97 fps
        "ten_seconds": write_video(folder / "ten_seconds.mp4", coded_frames(300), fps=30),
        "short": write_video(folder / "short.mp4", coded_frames(20), fps=10),  # 2 s
    }


@pytest.fixture
def processor():
    return TVRVideoProcessor(size=32, crop_size=32, max_frames=4)


def test_truncated_frame_rate_reads_the_first_frame_of_each_second(videos, processor):
    out = processor(videos["ntsc"], max_frames=6, return_metadata=True)
    assert out["pixel_values_videos"].shape == (1, 6, 3, 32, 32)
    assert out["pixel_values_videos"].dtype == torch.float32
    assert out["video_mask"].dtype == torch.int64
    assert out["video_mask"].tolist() == [[1, 1, 1, 1, 0, 0]]
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 29, 58, 87]]
    assert out["video_metadata"][0].frames_indices == [0, 29, 58, 87]
    assert torch.all(out["pixel_values_videos"][0, 4:] == 0)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(), [0, 90, 180, 270]),  # 10 per-second frames, uniform linspace(0, 9, 4) = 0, 3, 6, 9
        (dict(slice_framepos="head"), [0, 30, 60, 90]),
        (dict(slice_framepos="tail"), [180, 210, 240, 270]),
        (dict(num_frames=4), [37, 112, 187, 262]),  # segment middles of 4 x 75 frames
        (dict(fps=2, max_frames=25), [0, 15, 30, 45, 60, 75, 90, 105, 120, 135, 150, 165, 180, 195, 210, 225,
                                      240, 255, 270, 285]),
        (dict(start=2, end=5), [60, 90, 120, 150]),
        (dict(start=2.5, end=6.1, slice_framepos="head"), [75, 105, 135, 165]),
        (dict(frame_order="reverse"), [270, 180, 90, 0]),
    ],
)
def test_sampling_modes_decode_the_expected_frames(videos, processor, kwargs, expected):
    out = processor(videos["ten_seconds"], **kwargs)
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [expected]


def test_per_video_clips_in_a_batch(videos, processor):
    out = processor([videos["ten_seconds"], videos["ten_seconds"]], start=[2, None], end=[5, None])
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[60, 90, 120, 150], [0, 90, 180, 270]]
    with pytest.raises(ValueError, match="start has 3 values for 2 videos"):
        processor([videos["ten_seconds"]] * 2, start=[1, 2, 3])


def test_shuffle_is_reproducible_with_a_seed(videos, processor):
    first = processor([videos["ten_seconds"]] * 2, frame_order="shuffle", seed=7)
    again = processor([videos["ten_seconds"]] * 2, frame_order="shuffle", seed=7)
    codes = decoded_codes(first["pixel_values_videos"], first["video_mask"])
    assert codes == decoded_codes(again["pixel_values_videos"], again["video_mask"])
    # one generator per call, drawn video after video
    generator = np.random.default_rng(7)
    expected = [order_frame_indices(np.array([0, 90, 180, 270]), "shuffle", generator).tolist() for _ in range(2)]
    assert codes == expected


def test_only_the_sampled_frames_are_decoded(videos, processor, monkeypatch):
    import decord

    requests = []
    get_batch = decord.VideoReader.get_batch

    def spy(self, indices):
        requests.append(list(indices))
        return get_batch(self, indices)

    monkeypatch.setattr(decord.VideoReader, "get_batch", spy)
    processor(videos["ten_seconds"], frame_order="reverse")
    assert requests == [[0, 90, 180, 270]]


def test_short_video_is_padded_and_masked(videos):
    out = TVRVideoProcessor(size=32, crop_size=32)(videos["short"])  # default max_frames 12
    assert out["pixel_values_videos"].shape == (1, 12, 3, 32, 32)
    assert out["video_mask"].tolist() == [[1, 1] + [0] * 10]
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 10]]


def test_input_types_give_the_same_frames(videos, processor):
    path = videos["ten_seconds"]
    frames = coded_frames(300)
    from_path = processor(path)
    with open(path, "rb") as file:
        from_bytes = processor(file.read())
    torch.testing.assert_close(from_bytes["pixel_values_videos"], from_path["pixel_values_videos"], rtol=0, atol=0)
    metadata = {"total_num_frames": 300, "fps": 30.0}
    from_array = processor(frames, video_metadata=metadata)
    from_tensor = processor(torch.from_numpy(frames), video_metadata=metadata)
    from_pil = processor([Image.fromarray(frame) for frame in frames], video_metadata=metadata)
    for out in (from_array, from_tensor, from_pil):
        assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 90, 180, 270]]
    torch.testing.assert_close(from_tensor["pixel_values_videos"], from_array["pixel_values_videos"], rtol=0, atol=0)
    # without a frame rate, in-memory frames count as one per second: 3 frames are all kept
    out = processor(list(frames[[5, 6, 7]]))
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[5, 6, 7]]
    batch = processor([path, frames[:3], [Image.fromarray(frames[9])]])
    assert decoded_codes(batch["pixel_values_videos"], batch["video_mask"]) == [[0, 90, 180, 270], [0, 1, 2], [9]]


def test_decord_reader_input_and_no_sampling(videos, processor):
    import decord

    out = processor(decord.VideoReader(videos["ntsc"]), max_frames=6)
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 29, 58, 87]]
    out = processor(coded_frames(3), do_sample_frames=False)
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[0, 1, 2]]
    with pytest.raises(ValueError, match="exceed max_frames=4"):
        processor(coded_frames(5), do_sample_frames=False)


def test_widths_decord_cannot_copy_are_read_with_pyav(tmp_path, processor):
    """decord2 3.4 fails on frames 32 px wide (and a few other widths); those files are read with PyAV."""
    narrow = write_video(tmp_path / "narrow.mp4", coded_frames(300, height=32, width=32), fps=30)
    out = processor(narrow, frame_order="reverse")
    assert decoded_codes(out["pixel_values_videos"], out["video_mask"]) == [[270, 180, 90, 0]]


def test_pixels_match_the_original_transforms():
    """PIL Resize(bicubic, shorter side) + CenterCrop + ToTensor + Normalize, as CLIP4Clip, on a frame whose
    crop margin is odd (where transformers' own centre crop would shift by one pixel)."""
    generator = np.random.default_rng(0)
    rows, cols = np.mgrid[0:47, 0:64]
    frame = np.stack([cols * 4, rows * 5, (rows + cols) * 3 % 256], axis=-1) + generator.normal(0, 20, (47, 64, 3))
    frame = np.clip(frame, 0, 255).astype(np.uint8)
    for size in (224, 32):
        original = transforms.Compose(
            [
                transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
                transforms.Normalize(CLIP_MEAN.tolist(), CLIP_STD.tolist()),
            ]
        )(Image.fromarray(frame))
        ours = TVRVideoProcessor(size=size, crop_size=size, max_frames=1)(frame[None])["pixel_values_videos"][0, 0]
        difference = (ours - original).abs()
        # PIL and torch bicubic round a few pixels differently: at most one intensity level
        assert difference.max() <= 1.01 / 255 / CLIP_STD.min()
        assert difference.mean() < 1e-3


def test_bad_inputs_name_the_file(tmp_path, processor):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        processor(str(missing))
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("just text")
    with pytest.raises(ValueError, match="notes.mp4.*not a video"):
        processor(str(not_a_video))
    import av

    no_frames = tmp_path / "no_frames.mp4"
    with av.open(str(no_frames), "w") as container:  # a video track with no frames in it
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = 32
        container.start_encoding()
    with pytest.raises(ValueError, match="no_frames.mp4.*0 decodable frames"):
        processor(str(no_frames))
    with pytest.raises(TypeError, match="videos must be"):
        processor(3)
    with pytest.raises(ValueError, match="uint8"):
        processor(np.zeros((2, 8, 8, 3), dtype=np.float32))


def test_clip_outside_the_video_names_it(videos, processor):
    with pytest.raises(ValueError, match="ten_seconds.mp4.*no frames"):
        processor(videos["ten_seconds"], start=20, end=30)


def test_save_and_load(tmp_path, videos):
    processor = TVRVideoProcessor(size=48, crop_size=40, max_frames=5, slice_framepos="tail", fps=2)
    processor.save_pretrained(tmp_path)
    reloaded = TVRVideoProcessor.from_pretrained(tmp_path)
    assert reloaded.to_dict() == processor.to_dict()
    expected = processor(videos["ten_seconds"])
    torch.testing.assert_close(reloaded(videos["ten_seconds"])["pixel_values_videos"], expected["pixel_values_videos"])
    assert decoded_codes(expected["pixel_values_videos"], expected["video_mask"]) == [[225, 240, 255, 270, 285]]

    class ProcessingTestConfig(PretrainedConfig):
        model_type = "tvr-processing-test"

    # tvr registers the processor with each model config; any registration makes the class findable by name
    AutoVideoProcessor.register(ProcessingTestConfig, TVRVideoProcessor, exist_ok=True)
    auto = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(auto) is TVRVideoProcessor
    assert auto.to_dict() == processor.to_dict()
