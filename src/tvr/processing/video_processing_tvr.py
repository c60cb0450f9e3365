"""``TVRVideoProcessor``: videos in, ``pixel_values_videos`` + ``video_mask`` out, as the seeds prepare them."""

import os
import types
import typing
from typing import Any, Literal

import numpy as np
import torch
import torchvision.transforms.v2.functional as tvF
from huggingface_hub.dataclasses import validate_typed_dict
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling, SizeDict, validate_kwargs
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .decoding import open_video, read_frames, read_metadata, read_video_pyav, video_name
from .sampling import sample_frame_indices

Seconds = int | float


class TVRVideoProcessorKwargs(VideosKwargs, total=False):
    """Options of :class:`TVRVideoProcessor` beyond transformers' ``VideosKwargs``.

    ``fps`` (frames per second, default 1) and ``num_frames`` (fixed count, default ``None``) come from
    ``VideosKwargs``; setting ``num_frames`` switches from per-second to fixed-count sampling.

    Attributes:
        max_frames: frames per video in the output; fewer sampled frames are zero-padded and masked.
        slice_framepos: which frames to keep when per-second sampling gives more than ``max_frames``:
            ``"head"``, ``"tail"`` or ``"uniform"`` (CLIP4Clip's ``slice_framepos`` 0 / 1 / 2).
        frame_order: ``"normal"``, ``"reverse"`` or ``"shuffle"`` (CLIP4Clip's frame_order 0 / 1 / 2).
        frame_sampling: ``"per_second"`` (CLIP4Clip: ``fps`` frames from each second of ``int(video_fps)`` frames) or
            ``"stride"`` (InternVideo: every ``round(video_fps / fps)``-th frame); see :mod:`tvr.processing.sampling`.
        start: clip start in seconds, one value for all videos or one per video (``None`` = video start).
        end: clip end in seconds, likewise (``None`` = video end).
        seed: seed of the generator that shuffles frames (``frame_order="shuffle"``), for reproducibility.
        decode_threads: decord decoding threads per video; 1 suits DataLoader workers, 0 lets FFmpeg use
            every core (fastest for a single process).
    """

    max_frames: int
    slice_framepos: Literal["head", "tail", "uniform"]
    frame_order: Literal["normal", "reverse", "shuffle"]
    frame_sampling: Literal["per_second", "stride"]
    start: Seconds | list[Seconds | None] | None
    end: Seconds | list[Seconds | None] | None
    seed: int | None
    decode_threads: int


# sampling settings checked when a processor is made (from code, a saved config or --processor-kwargs): a value of
# the wrong type fails there, naming the setting, not later in every video's decoding
SETTINGS_CHECKED_AT_INIT = ("fps", "num_frames", "max_frames", "slice_framepos", "frame_order", "frame_sampling",
                            "start", "end", "seed", "decode_threads")


def check_settings(valid_kwargs: type, settings: dict[str, Any], names: tuple[str, ...]) -> None:
    """Check the types of ``settings[name]`` for ``names`` against the ``valid_kwargs`` TypedDict.

    Raises:
        ValueError: one line naming the setting, its value and the type expected.
    """
    for name in names:
        if name not in settings:
            continue
        try:
            validate_typed_dict(valid_kwargs, {name: settings[name]})
        except Exception:  # noqa: BLE001  (huggingface_hub's StrictDataclassFieldValidationError: several lines)
            expected = _describe_type(typing.get_type_hints(valid_kwargs)[name])
            raise ValueError(f"processor setting {name}={settings[name]!r} is not valid: expected {expected}; fix it "
                             "in --processor-kwargs / processor_kwargs or the processor's config") from None


def _describe_type(annotation: Any) -> str:
    """``int | float | None`` -> ``"int or float or None"``; ``Literal["a", "b"]`` -> ``"one of 'a', 'b'"``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if args and origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(arg) for arg in args)
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


class TVRVideoProcessor(BaseVideoProcessor):
    r"""Decode, sample, resize, crop and normalise videos for text-video retrieval models.

    Accepts, for one video, a path, the file's bytes, a ``decord.VideoReader``, a ``(num_frames, height, width, 3)``
    uint8 array or tensor, or a list of PIL images / ``(height, width, 3)`` arrays; a list of those is a batch.
    Files are read with decord, decoding only the sampled frames. Frames are sampled per second (CLIP4Clip,
    EMCL-Net: ``fps``, then ``slice_framepos`` down to ``max_frames``) or as ``num_frames`` segment middles
    (InternVideo), optionally inside a ``[start, end]`` clip, then put in ``frame_order``. Each frame is resized
    (shorter side to ``size``, bicubic), centre-cropped to ``crop_size``, rescaled to [0, 1] and normalised with
    the CLIP mean / std, i.e. CLIP4Clip's ``Resize(224, BICUBIC) + CenterCrop(224) + ToTensor + Normalize``.

    Frame arrays carry no frame rate: pass ``video_metadata`` (with ``fps``) to sample them by time; without it
    each frame counts as one second, so per-second sampling keeps every frame (already sampled frames).

    Returns a ``BatchFeature`` with

    - ``pixel_values_videos``: ``(batch_size, max_frames, 3, crop_height, crop_width)`` float32, zero-padded; with
      ``do_rescale=False`` and ``do_normalize=False``, the resized and cropped uint8 frames (turned into the float
      values on the model's device by :func:`tvr.processing.normalize_videos`);
    - ``video_mask``: ``(batch_size, max_frames)`` int64, 1 for real frames (every video has at least one);
    - ``video_metadata`` (with ``return_metadata=True``): per video, a ``VideoMetadata`` whose
      ``frames_indices`` are the decoded frame indices in output order.

    Example:
        >>> processor = TVRVideoProcessor(size=32, crop_size=32, max_frames=4)
        >>> batch = processor(["a.mp4", "b.mp4"], start=[None, 2.0], end=[None, 9.5])  # doctest: +SKIP
        >>> batch["pixel_values_videos"].shape, batch["video_mask"].shape  # doctest: +SKIP
        (torch.Size([2, 4, 3, 32, 32]), torch.Size([2, 4]))
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 224}
    crop_size = {"height": 224, "width": 224}
    default_to_square = False
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_sample_frames = True
    do_convert_rgb = True  # every frame becomes RGB (grey repeated, alpha dropped)
    fps = 1
    num_frames = None
    max_frames = 12
    slice_framepos = "uniform"
    frame_order = "normal"
    frame_sampling = "per_second"
    start = None
    end = None
    seed = None
    decode_threads = 1
    valid_kwargs = TVRVideoProcessorKwargs
    model_input_names = ["pixel_values_videos", "video_mask"]

    def __init__(self, **kwargs: Unpack[TVRVideoProcessorKwargs]) -> None:
        check_settings(self.valid_kwargs, kwargs, SETTINGS_CHECKED_AT_INIT)
        super().__init__(**kwargs)

    def preprocess(self, videos: Any, **kwargs: Unpack[TVRVideoProcessorKwargs]) -> BatchFeature:
        """Turn one video or a batch of videos into ``pixel_values_videos`` and ``video_mask`` (see the class doc)."""
        validate_kwargs(
            captured_kwargs=kwargs.keys(),
            valid_processor_keys=list(self.valid_kwargs.__annotations__) + ["return_tensors"],
        )
        validate_typed_dict(self.valid_kwargs, kwargs)
        # the seeds' layout pads every video to max_frames; a call that asks for its own frame count gets that many
        pad_to_max_frames = "num_frames" not in kwargs and "fps" not in kwargs
        for name in self.valid_kwargs.__annotations__:
            kwargs.setdefault(name, getattr(self, name, None))

        videos = _as_video_batch(videos)
        frames, metadata = self._decode_and_sample_videos(
            videos,
            video_metadata=kwargs.pop("video_metadata"),
            do_sample_frames=kwargs.pop("do_sample_frames"),
            generator=np.random.default_rng(kwargs.pop("seed")),
            fps=kwargs.pop("fps"),
            num_frames=kwargs.pop("num_frames"),
            max_frames=kwargs["max_frames"],
            slice_framepos=kwargs.pop("slice_framepos"),
            frame_order=kwargs.pop("frame_order"),
            frame_sampling=kwargs.pop("frame_sampling"),
            start=kwargs.pop("start"),
            end=kwargs.pop("end"),
            decode_threads=kwargs.pop("decode_threads"),
        )
        device = kwargs.pop("device")
        frames = [torch.from_numpy(video).permute(0, 3, 1, 2).contiguous().to(device) for video in frames]

        kwargs = self._standardize_kwargs(**kwargs)
        self._validate_preprocess_kwargs(**kwargs)
        return_tensors = kwargs.pop("return_tensors")
        return_metadata = kwargs.pop("return_metadata")
        max_frames = kwargs.pop("max_frames")
        processed = self._preprocess(videos=frames, return_tensors=None, **kwargs)["pixel_values_videos"]

        pixel_values, video_mask = _pad_frames(processed, max_frames if pad_to_max_frames else None)
        data = {"pixel_values_videos": pixel_values, "video_mask": video_mask}
        if return_metadata:
            data["video_metadata"] = metadata
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["video_metadata"])

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: int | float | None = None,
        *,
        max_frames: int | None = None,
        slice_framepos: str | None = None,
        frame_order: str | None = None,
        frame_sampling: str | None = None,
        start: Seconds | None = None,
        end: Seconds | None = None,
        generator: np.random.Generator | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Indices of the frames to decode from a video described by ``metadata``, in output order.

        Unset options fall back to the processor's; see :func:`tvr.processing.sample_frame_indices`.
        """
        return sample_frame_indices(
            metadata.total_num_frames,
            metadata.fps,
            fps=fps if fps is not None else self.fps,
            num_frames=num_frames if num_frames is not None else self.num_frames,
            max_frames=max_frames if max_frames is not None else self.max_frames,
            slice_framepos=slice_framepos or self.slice_framepos,
            frame_order=frame_order or self.frame_order,
            frame_sampling=frame_sampling or self.frame_sampling,
            start=start,
            end=end,
            generator=generator,
        )

    def _decode_and_sample_videos(
        self,
        videos: list,
        video_metadata: VideoMetadata | dict | list | None,
        do_sample_frames: bool,
        generator: np.random.Generator,
        start: Seconds | list[Seconds | None] | None,
        end: Seconds | list[Seconds | None] | None,
        decode_threads: int,
        max_frames: int,
        **sampling,
    ) -> tuple[list[np.ndarray], list[VideoMetadata]]:
        """Sample and decode each video: ``(num_sampled, height, width, 3)`` uint8 frames and their metadata."""
        starts = _per_video("start", start, len(videos))
        ends = _per_video("end", end, len(videos))
        given_metadata = _per_video("video_metadata", video_metadata, len(videos))
        all_frames, all_metadata = [], []
        for index, video in enumerate(videos):
            name = video_name(video) if _is_file(video) else f"#{index} ({type(video).__name__})"
            options = dict(sampling, start=starts[index], end=ends[index], generator=generator, max_frames=max_frames)
            if _is_file(video):
                try:
                    reader = open_video(video, num_threads=decode_threads)
                    metadata = read_metadata(reader)
                    indices = self._frame_indices(metadata, name, do_sample_frames, **options)
                    frames = read_frames(reader, indices, name, video=video)
                except ValueError as decord_error:  # before giving up on the video, try the other decoder
                    frames, metadata, indices = self._read_with_pyav(video, name, decord_error, do_sample_frames,
                                                                     options)
            elif _is_decord_reader(video):
                metadata = read_metadata(video)
                indices = self._frame_indices(metadata, name, do_sample_frames, **options)
                frames = read_frames(video, indices, name)
            else:
                frames = _frames_to_array(video, name)
                metadata = _metadata_for_frames(given_metadata[index], len(frames))
                indices = self._frame_indices(metadata, name, do_sample_frames, **options)
                frames = frames[indices]
            metadata.frames_indices = indices.tolist()
            metadata.height, metadata.width = frames.shape[1:3]
            all_frames.append(frames)
            all_metadata.append(metadata)
        return all_frames, all_metadata

    def _read_with_pyav(self, video: Any, name: str, decord_error: ValueError, do_sample_frames: bool,
                        options: dict) -> tuple[np.ndarray, VideoMetadata, np.ndarray]:
        """Decode a file decord refused with PyAV (which reads e.g. moov-first mp4 files cut short); when PyAV
        fails too, the error names both decoders' reasons."""
        def sample(metadata: VideoMetadata) -> np.ndarray:
            return self._frame_indices(metadata, name, do_sample_frames, **options)

        try:
            return read_video_pyav(video, name, sample)
        except ValueError as pyav_error:
            if str(pyav_error) == str(decord_error):  # the same sampling error, not a decoding one
                raise
            reason = str(pyav_error).removeprefix(f"video '{name}': ")
            raise ValueError(f"{decord_error}; PyAV could not decode it either: {reason}") from None

    def _frame_indices(
        self, metadata: VideoMetadata, name: str, do_sample_frames: bool, max_frames: int, **sampling
    ) -> np.ndarray:
        """Frame indices to decode from one video; errors name the video."""
        try:
            if do_sample_frames:
                num_frames = sampling.get("num_frames") or self.num_frames
                if num_frames is not None and num_frames > metadata.total_num_frames:
                    raise ValueError(
                        f"num_frames={num_frames} asks for more frames than the video's {metadata.total_num_frames}"
                    )
                return self.sample_frames(metadata, max_frames=max_frames, **sampling)
            if metadata.total_num_frames < 1:  # the output must hold at least one real frame per video
                raise ValueError("0 frames (every video needs at least one)")
            if metadata.total_num_frames > max_frames:
                raise ValueError(
                    f"{metadata.total_num_frames} frames exceed max_frames={max_frames} and do_sample_frames=False"
                )
            return np.arange(metadata.total_num_frames)
        except ValueError as error:
            raise ValueError(f"video '{name}': {error}") from None

    def center_crop(self, image: torch.Tensor, size: SizeDict, **kwargs) -> torch.Tensor:
        """Centre crop as torchvision's ``CenterCrop`` does (it rounds odd margins unlike transformers' own crop)."""
        return tvF.center_crop(image, [size.height, size.width])


def _is_file(video: Any) -> bool:
    return isinstance(video, (str, os.PathLike, bytes, bytearray))


def _is_decord_reader(video: Any) -> bool:
    return type(video).__name__ == "VideoReader" and type(video).__module__.startswith("decord")


def _is_frame(frame: Any) -> bool:
    if isinstance(frame, (np.ndarray, torch.Tensor)):
        return frame.ndim == 3
    return hasattr(frame, "convert") and hasattr(frame, "size")  # a PIL image


def _is_video(video: Any) -> bool:
    if _is_file(video) or _is_decord_reader(video):
        return True
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return video.ndim == 4
    return isinstance(video, (list, tuple)) and len(video) > 0 and all(_is_frame(frame) for frame in video)


def _as_video_batch(videos: Any) -> list:
    """One video or a batch of videos -> a list of videos."""
    if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 5:
        return list(videos)
    if _is_video(videos):
        return [videos]
    if isinstance(videos, (list, tuple)) and len(videos) > 0 and all(_is_video(video) for video in videos):
        return list(videos)
    raise TypeError(
        "videos must be a path, bytes, a decord.VideoReader, a (num_frames, height, width, 3) uint8 array or "
        "tensor, a list of frames (PIL images or (height, width, 3) arrays), or a list of those; "
        f"got {_describe(videos)}"
    )


def _describe(value: Any) -> str:
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return f"{type(value).__name__} of shape {tuple(value.shape)}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__} of {len(value)} items" + (f", first {_describe(value[0])}" if value else "")
    return type(value).__name__


def _frames_to_array(video: Any, name: str) -> np.ndarray:
    """Frames given in memory -> ``(num_frames, height, width, 3)`` uint8 RGB array.

    Arrays and tensors may be channels-last ``(T, H, W, C)`` or channels-first ``(T, C, H, W)`` (read as such when
    the last axis is not a channel count and the second is); grey (1 channel) and RGBA (4, alpha dropped) frames
    are converted to RGB, as PIL frames are (``do_convert_rgb``).
    """
    if isinstance(video, (list, tuple)):
        video = [np.asarray(frame.convert("RGB")) if hasattr(frame, "convert") else frame for frame in video]
        video = np.stack([frame.cpu().numpy() if isinstance(frame, torch.Tensor) else frame for frame in video])
    elif isinstance(video, torch.Tensor):
        video = video.cpu().numpy()
    if video.ndim == 4 and video.shape[-1] not in _CHANNELS and video.shape[1] in _CHANNELS:
        video = video.transpose(0, 2, 3, 1)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] not in _CHANNELS:
        raise ValueError(
            f"video '{name}': expected uint8 frames of shape (num_frames, height, width, channels) or (num_frames, "
            f"channels, height, width) with 1, 3 or 4 channels, got {video.dtype} of shape {video.shape}"
        )
    if video.shape[-1] == 1:
        video = np.repeat(video, 3, axis=-1)
    return np.ascontiguousarray(video[..., :3])


_CHANNELS = (1, 3, 4)


def _metadata_for_frames(metadata: VideoMetadata | dict | None, total_frames: int) -> VideoMetadata:
    """Metadata of in-memory frames: the given frame rate, or 1 fps (each frame is one second) without one.

    A video's metadata may come wrapped in a one-element list, as transformers' processors nest it."""
    if isinstance(metadata, (list, tuple)) and len(metadata) == 1:
        metadata = metadata[0]
    if isinstance(metadata, dict):
        metadata = VideoMetadata(**metadata)
    fps = metadata.fps if metadata is not None and metadata.fps else 1.0
    return VideoMetadata(total_num_frames=total_frames, fps=fps, duration=total_frames / fps, video_backend=None)


def _per_video(name: str, value: Any, batch_size: int) -> list:
    """A scalar option -> the same value for every video; a list -> checked to have one value per video."""
    if isinstance(value, (list, tuple)):
        if len(value) != batch_size:
            raise ValueError(f"{name} has {len(value)} values for {batch_size} videos")
        return list(value)
    return [value] * batch_size


def _pad_frames(videos: list[torch.Tensor], max_frames: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(num_frames_i, 3, H, W)`` videos into zero-padded ``(batch, max_frames, 3, H, W)`` values and a
    ``(batch, max_frames)`` mask (``max_frames=None``: as many frames as the longest video); the values keep the
    frames' dtype (uint8 frames that were not rescaled stay uint8)."""
    max_frames = max_frames or max(len(video) for video in videos)
    shapes = {tuple(video.shape[1:]) for video in videos}
    if len(shapes) > 1:
        raise ValueError(f"processed frames differ in size {sorted(shapes)}; enable do_center_crop to batch them")
    pixel_values = videos[0].new_zeros((len(videos), max_frames, *shapes.pop()))
    video_mask = torch.zeros((len(videos), max_frames), dtype=torch.long, device=pixel_values.device)
    for index, video in enumerate(videos):
        pixel_values[index, : len(video)] = video
        video_mask[index, : len(video)] = 1
    return pixel_values, video_mask


# tvr 0.1's name of the options class (transformers names it after the processor)
TVRVideosKwargs = TVRVideoProcessorKwargs

__all__ = ["TVRVideoProcessor", "TVRVideoProcessorKwargs", "TVRVideosKwargs"]
