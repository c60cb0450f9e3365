"""The one decode -> skip bad videos -> encode loop: ``tvr eval``, ``tvr index`` (whole or in shards) and the
pipelines all encode videos with :func:`encode_video_batches`.

Videos are decoded ``batch_size`` at a time by the processor (in DataLoader workers when asked), the ones that
cannot be decoded are left out and reported under the one policy of :mod:`tvr.processing.bad_videos`, and each
batch is encoded by ``model.encode_video`` on the model's device as soon as it is decoded (memory holds one batch).
What differs between the callers is a parameter: the progress bar, uint8 frames normalised on the device or float
frames from the processor, the frame dtype, where the encodings are kept, the DataLoader workers, muting the
native decoders' logs. A frame cache is a processor (:class:`tvr.data.frame_cache.CachedVideoProcessor` wraps one).

Example::

    encoded = encode_video_batches(model, processor, paths, batch_size=16, progress=False)
    encoded.kept     # positions in `paths` of the encoded videos, the rows of the concatenated encodings
    encoded.failed   # {path: "ErrorType: message"} of the others
    encoding = tvr.modeling.outputs.concat_encodings(encoded.encodings)
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .bad_videos import DecodedVideos, check_bad_video_policy, process_videos
from .normalization import UINT8_FRAMES, video_inputs_on_device


class EncodedVideos(NamedTuple):
    """What :func:`encode_video_batches` made of a list of videos.

    Attributes:
        encodings: one ``model.encode_video`` output per batch that had a decodable video, in order (concatenate
            them with :func:`tvr.modeling.outputs.concat_encodings`); empty when no video could be decoded.
        kept: positions (in the list given) of the encoded videos, the rows of the concatenated encodings.
        failed: ``{path: "ErrorType: message"}`` of the videos left out (``on_bad_video="skip"``).
    """

    encodings: list[Any]
    kept: list[int]
    failed: dict[str, str]


def encode_video_batches(
    model: Any,
    processor: Any,
    videos: Sequence[Any],
    batch_size: int,
    *,
    starts: Sequence[float | None] | None = None,
    ends: Sequence[float | None] | None = None,
    on_bad_video: str = "skip",
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    uint8_frames: bool = True,
    to_cpu: bool = False,
    num_workers: int = 0,
    progress: bool = False,
    desc: str = "encoding videos",
    mute_decoder_logs: bool = False,
) -> EncodedVideos:
    """Decode ``videos`` in batches, leave out the ones that cannot be decoded, encode the rest with
    ``model.encode_video`` (in eval mode, without gradients; the model's mode is restored afterwards).

    Args:
        model: a tvr model (``encode_video(pixel_values_videos, video_mask)``).
        processor: a ``TVRProcessor`` / ``TVRVideoProcessor`` (or a processor wrapping one, e.g. a frame cache),
            called as ``processor(videos=[...], start=[...], end=[...], return_tensors="pt")``.
        videos: video paths (or anything the processor decodes: bytes, frame arrays).
        batch_size: videos decoded and encoded per forward pass.
        starts, ends: clip bounds in seconds per video (``None``: the whole video); passed only when some video
            has one.
        on_bad_video: ``"skip"``: a video that cannot be decoded is left out and listed in ``failed``; ``"error"``:
            the processor's error (naming the video) is raised.
        device: where the model runs (default: the model's device).
        dtype: cast the frames to this dtype on the device (the pipelines: the model's dtype); default as they come.
        uint8_frames: ask the processor for uint8 frames and normalise them on ``device``
            (:func:`~tvr.processing.normalization.video_inputs_on_device`); ``False``: the processor normalises.
        to_cpu: move each batch's encoding to the CPU (an index keeps them there); default: left on ``device``.
        num_workers: DataLoader workers that decode (the processor must pickle).
        progress, desc: a tqdm bar over the batches, and its label.
        mute_decoder_logs: silence what the native decoders print on stderr while decoding (a bad video is then
            reported once, in ``failed``).

    Returns:
        An :class:`EncodedVideos` ``(encodings, kept, failed)``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    video_processor = getattr(processor, "video_processor", processor)
    batches = decoded_batches(processor, videos, batch_size, starts=starts, ends=ends, on_bad_video=on_bad_video,
                              uint8_frames=uint8_frames, num_workers=num_workers, pin_memory=device.type == "cuda",
                              mute_decoder_logs=mute_decoder_logs)
    encodings, kept, failed = [], [], {}
    was_training = model.training
    model.eval()
    try:
        for decoded in tqdm(batches, desc=desc, disable=not progress):
            failed.update(decoded.failed)
            if decoded.inputs is None:
                continue
            kept += decoded.kept
            encoding = encode_decoded_videos(model, decoded.inputs, video_processor, device, dtype)
            if to_cpu:
                encoding = type(encoding)(**{name: value.detach().cpu() for name, value in encoding.items()})
            encodings.append(encoding)
    finally:
        model.train(was_training)
    return EncodedVideos(encodings, kept, failed)


def encode_decoded_videos(model: Any, inputs: Mapping[str, torch.Tensor], video_processor: Any,
                          device: torch.device | str, dtype: torch.dtype | None = None) -> Any:
    """``model.encode_video`` of one batch of processor outputs: frames and mask moved to ``device`` (uint8 frames
    normalised there with ``video_processor``'s settings), frames cast to ``dtype`` when given."""
    pixel_values, video_mask = video_inputs_on_device(inputs, video_processor, device)
    if dtype is not None:
        pixel_values = pixel_values.to(dtype)
    with torch.no_grad():
        return model.encode_video(pixel_values_videos=pixel_values, video_mask=video_mask)


def decoded_batches(processor: Any, videos: Sequence[Any], batch_size: int, *,
                    starts: Sequence[float | None] | None = None, ends: Sequence[float | None] | None = None,
                    on_bad_video: str = "skip", uint8_frames: bool = True, num_workers: int = 0,
                    pin_memory: bool = False, mute_decoder_logs: bool = False) -> Iterator[DecodedVideos]:
    """The decoding half of :func:`encode_video_batches`: one :class:`~tvr.processing.bad_videos.DecodedVideos` per
    batch of ``batch_size`` videos, produced as it is consumed, with ``kept`` as positions in ``videos``."""
    check_bad_video_policy(on_bad_video)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    collate = VideoBatchDecoder(processor, videos, starts, ends, on_bad_video, uint8_frames, mute_decoder_logs)
    return iter(DataLoader(range(len(collate.videos)), batch_size=batch_size, collate_fn=collate,
                           num_workers=num_workers, pin_memory=pin_memory))


class VideoBatchDecoder:
    """Decodes the videos at some positions with the processor (a DataLoader ``collate_fn``, picklable, so it runs in
    DataLoader workers): the processor's outputs of the decodable ones (or ``None``), their positions, and
    ``{path: error}`` of the others."""

    def __init__(self, processor: Any, videos: Sequence[Any], starts=None, ends=None, on_bad_video: str = "skip",
                 uint8_frames: bool = True, mute_decoder_logs: bool = False):
        self.processor = processor
        self.videos = list(videos)
        self.starts = list(starts) if starts is not None else [None] * len(self.videos)
        self.ends = list(ends) if ends is not None else [None] * len(self.videos)
        self.on_bad_video = on_bad_video
        self.options = UINT8_FRAMES if uint8_frames else {}
        self.mute_decoder_logs = mute_decoder_logs

    def __call__(self, positions: list[int]) -> DecodedVideos:
        starts = ends = None
        # whole-video rows have start = end = None; only clip datasets pass times
        if any(self.starts[i] is not None or self.ends[i] is not None for i in positions):
            starts, ends = [self.starts[i] for i in positions], [self.ends[i] for i in positions]
        with decoder_logs_muted() if self.mute_decoder_logs else contextlib.nullcontext():
            decoded = process_videos(self.processor, [self.videos[i] for i in positions], starts, ends,
                                     self.on_bad_video, **self.options)
        inputs = decoded.inputs
        if inputs is not None:  # the frames and mask only (no metadata to pin or move)
            inputs = {"pixel_values_videos": inputs["pixel_values_videos"], "video_mask": inputs["video_mask"]}
        return DecodedVideos(inputs, [positions[position] for position in decoded.kept], decoded.failed)


@contextlib.contextmanager
def decoder_logs_muted() -> Iterator[None]:
    """Discard what the native decoders (FFmpeg, decord) print on file descriptor 2 while a batch is decoded: a bad
    video is reported once, by the caller, with its error."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


__all__ = ["EncodedVideos", "VideoBatchDecoder", "decoded_batches", "decoder_logs_muted", "encode_decoded_videos",
           "encode_video_batches"]
