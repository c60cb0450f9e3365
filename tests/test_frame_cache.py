"""uint8 frames from the video processor, their normalisation on the device, and the decoded-frame cache (on disk,
memory-mapped, crash-safe; or in memory) on tiny synthetic videos."""

import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tvr import TVRVideoProcessor
from tvr.data import write_video
from tvr.data.frame_cache import CachedVideoProcessor, FrameCache, frame_cache_key, frame_settings
from tvr.processing import normalize_videos
from tvr.processing.video_processing_tvr import TVRVideoProcessor as ProcessorClass
from tvr.utils.output_dir import MARKER, read_marker

UINT8 = dict(do_rescale=False, do_normalize=False)


def random_video(path, num_frames, seed, height=48, width=64, fps=4):
    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    return write_video(path, frames, fps=fps)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    # 5 s and 1.5 s at 4 fps: per-second sampling gives 5 and 2 frames, so max_frames=4 truncates one, pads the other
    return [random_video(root / "long.mp4", 20, 0), random_video(root / "short.mp4", 6, 1)]


@pytest.fixture
def processor():
    return TVRVideoProcessor(size=32, crop_size=32, max_frames=4)


def raw_video(path, seed, num_frames=8, height=48, width=64):
    """An uncompressed AVI of random frames: its size depends only on its shape, so two differ in content only."""
    import av

    frames = np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    with av.open(os.fspath(path), mode="w", format="avi") as container:
        stream = container.add_stream("rawvideo", rate=4)
        stream.width, stream.height, stream.pix_fmt = width, height, "bgr24"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return os.fspath(path)


def count_decodes(monkeypatch) -> list:
    """Count the processor's decoding calls (the list grows by one per call)."""
    decodes = []
    decode = ProcessorClass._decode_and_sample_videos

    def counting(self, *args, **kwargs):
        decodes.append(1)
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(ProcessorClass, "_decode_and_sample_videos", counting)
    return decodes


def refuse_decoding(monkeypatch):
    """Make every decoding attempt fail, so only cached frames can be returned."""
    def fail(*args, **kwargs):
        raise RuntimeError("decoder called")
    monkeypatch.setattr(ProcessorClass, "_decode_and_sample_videos", fail)


# ------------------------------------------------------------------------------------------------ uint8 + normalise


def test_uint8_frames_normalised_on_the_device_equal_the_processor_floats(videos, processor):
    floats = processor(videos, return_tensors="pt")
    frames = processor(videos, **UINT8, return_tensors="pt")
    assert frames["pixel_values_videos"].dtype == torch.uint8
    assert torch.equal(frames["video_mask"], floats["video_mask"])
    assert frames["video_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert frames["pixel_values_videos"][1, 2:].eq(0).all()  # uint8 zero padding

    normalized = normalize_videos(frames["pixel_values_videos"], frames["video_mask"], processor)
    assert normalized.dtype == torch.float32
    torch.testing.assert_close(normalized, floats["pixel_values_videos"], rtol=0, atol=1e-6)
    assert normalized[1, 2:].eq(0).all() and floats["pixel_values_videos"][1, 2:].eq(0).all()
    # padding comes out 0 from the mask, whatever the padded frames hold
    dirty = frames["pixel_values_videos"].clone()
    dirty[1, 2:] = 200
    assert torch.equal(normalize_videos(dirty, frames["video_mask"], processor), normalized)
    # the processor's own settings: rescale only, then neither
    rescale_only = processor(videos, do_normalize=False, return_tensors="pt")["pixel_values_videos"]
    processor.do_normalize = False
    torch.testing.assert_close(normalize_videos(frames["pixel_values_videos"], frames["video_mask"], processor),
                               rescale_only, rtol=0, atol=1e-7)
    processor.do_rescale = False
    assert torch.equal(normalize_videos(frames["pixel_values_videos"], frames["video_mask"], processor),
                       frames["pixel_values_videos"].float())
    bf16 = normalize_videos(frames["pixel_values_videos"], frames["video_mask"], processor, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="uint8"):
        normalize_videos(floats["pixel_values_videos"], floats["video_mask"], processor)
    with pytest.raises(TypeError, match="cannot normalise uint8 frames with object"):
        normalize_videos(frames["pixel_values_videos"], frames["video_mask"], object())


# ------------------------------------------------------------------------------------------------ the cache


def test_cached_frames_are_the_processor_frames_memory_mapped_and_reused(tmp_path, videos, processor, monkeypatch):
    expected = processor(videos, **UINT8, return_tensors="pt")
    floats = processor(videos, return_tensors="pt")
    cached = CachedVideoProcessor(processor, tmp_path / "cache")
    first = cached(videos=videos, **UINT8)
    assert torch.equal(first["pixel_values_videos"], expected["pixel_values_videos"])
    assert torch.equal(first["video_mask"], expected["video_mask"])
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    # no temporary file left; the folder is marked as tvr's frame cache
    assert len(entries) == 2 and [path.name for path in (tmp_path / "cache").rglob(".*")] == [MARKER]
    assert read_marker(tmp_path / "cache") == {"kind": "frame cache", "files": None}

    # a new run (a fresh cache object) reads the entries, memory-mapped, without decoding
    refuse_decoding(monkeypatch)
    again = CachedVideoProcessor(processor, tmp_path / "cache")
    key = frame_cache_key(again.settings, (os.fspath(videos[1]), None, None))
    stored = again.store.get(key)
    assert isinstance(stored, np.memmap) and not stored.flags.writeable
    assert np.array_equal(stored, expected["pixel_values_videos"][1, :2].numpy())  # the 2 valid frames only
    assert torch.equal(again(videos=videos, **UINT8)["pixel_values_videos"], expected["pixel_values_videos"])
    # without do_rescale / do_normalize: the processor's floats
    torch.testing.assert_close(again(videos=videos)["pixel_values_videos"], floats["pixel_values_videos"],
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="change the frames"):
        again(videos=videos, fps=2)


def test_in_memory_cache_holds_uint8_frames(videos, processor, monkeypatch):
    expected = processor(videos, **UINT8, return_tensors="pt")["pixel_values_videos"]
    cached = CachedVideoProcessor(processor)
    cached.fill([(os.fspath(path), None, None) for path in videos], show_progress=False)
    assert [entry.dtype for entry in cached.store.entries.values()] == [np.uint8, np.uint8]
    assert sorted(entry.shape for entry in cached.store.entries.values()) == [(2, 3, 32, 32), (4, 3, 32, 32)]
    refuse_decoding(monkeypatch)
    assert torch.equal(cached(videos=videos, **UINT8)["pixel_values_videos"], expected)


def test_the_key_names_the_file_the_clip_and_the_frame_settings(tmp_path, videos, processor):
    path = random_video(tmp_path / "v.mp4", 12, 2)
    settings = frame_settings(processor)
    key = frame_cache_key(settings, (path, None, None))
    assert frame_cache_key(settings, (path, None, None)) == key
    assert frame_cache_key(settings, (path, 0.5, None)) != key
    assert frame_cache_key(settings, (path, None, 2.0)) != key
    for option in (dict(fps=2), dict(max_frames=3), dict(size=24, crop_size=24), dict(slice_framepos="head"),
                   dict(num_frames=3), dict(frame_sampling="stride"), dict(do_center_crop=False)):
        other = TVRVideoProcessor(**{**dict(size=32, crop_size=32, max_frames=4), **option})
        assert frame_cache_key(frame_settings(other), (path, None, None)) != key, option
    # what is applied after caching, and how many threads decode, do not change the frames
    for option in (dict(image_mean=[0.5] * 3), dict(do_normalize=False), dict(decode_threads=0)):
        other = TVRVideoProcessor(**{**dict(size=32, crop_size=32, max_frames=4), **option})
        assert frame_cache_key(frame_settings(other), (path, None, None)) == key, option
    with pytest.raises(ValueError, match="frame_order='shuffle' cannot be cached"):
        CachedVideoProcessor(TVRVideoProcessor(frame_order="shuffle"))


def test_a_rewritten_video_is_decoded_again(tmp_path, processor):
    path = random_video(tmp_path / "v.mp4", 8, 3)
    cached = CachedVideoProcessor(processor, tmp_path / "cache")
    before = cached(videos=[path], **UINT8)["pixel_values_videos"]
    stat = os.stat(path)
    random_video(path, 8, 4)  # same name, new content
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = cached(videos=[path], **UINT8)["pixel_values_videos"]
    assert torch.equal(after, processor([path], **UINT8, return_tensors="pt")["pixel_values_videos"])
    assert not torch.equal(after, before)
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2


def _write_many(directory: str, key: str, frames: np.ndarray) -> None:
    cache = FrameCache(directory)
    for _ in range(30):
        cache.put(key, frames)


def test_concurrent_writers_of_one_entry_leave_it_whole(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (6, 3, 64, 64), dtype=np.uint8)
    key = "ab" + "0" * 62
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_many, args=(os.fspath(tmp_path), key, frames)) for _ in range(2)]
    for writer in writers:
        writer.start()
    cache = FrameCache(tmp_path)
    while any(writer.is_alive() for writer in writers):  # a reader during the writes: whole entries or none
        entry = cache.get(key)
        if entry is not None:
            assert np.array_equal(entry, frames)
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert np.array_equal(cache.get(key), frames)
    assert [path.name for path in (tmp_path / "ab").iterdir()] == [f"{key}.npy"]  # no temporary file left


class Killed(BaseException):
    pass


def test_an_interrupted_write_leaves_no_entry_and_is_written_again(tmp_path, videos, processor, monkeypatch):
    cached = CachedVideoProcessor(processor, tmp_path / "cache")

    def killed_before_rename(source, target):
        raise Killed()

    monkeypatch.setattr(os, "replace", killed_before_rename)
    with pytest.raises(Killed):
        cached(videos=videos[:1], **UINT8)
    monkeypatch.undo()
    # no entry, no temporary file (only the folder's marker)
    assert [path.name for path in (tmp_path / "cache").rglob("*") if path.is_file()] == [MARKER]

    # a writer killed outright leaves its temporary file: never read, removed by the next writer of the entry
    key = frame_cache_key(cached.settings, (os.fspath(videos[0]), None, None))
    entry = cached.store.path(key)
    leftover = entry.parent / f".{entry.name}.tmp-999999999-0000"
    leftover.write_bytes(b"\x93NUMPY half a file")
    assert cached.store.get(key) is None
    expected = processor(videos[:1], **UINT8, return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(cached(videos=videos[:1], **UINT8)["pixel_values_videos"], expected)
    assert sorted(entry.parent.iterdir()) == [entry] and cached.store.get(key) is not None


def test_a_truncated_entry_is_a_miss_and_is_written_again(tmp_path, videos, processor, monkeypatch):
    cached = CachedVideoProcessor(processor, tmp_path / "cache")
    expected = cached(videos=videos[:1], **UINT8)["pixel_values_videos"]
    key = frame_cache_key(cached.settings, (os.fspath(videos[0]), None, None))
    entry = cached.store.path(key)
    whole = entry.read_bytes()
    for torn in (whole[: len(whole) // 2], whole[:40], b"", whole + b"\0"):
        entry.write_bytes(torn)
        assert cached.store.get(key) is None, len(torn)
    decodes = count_decodes(monkeypatch)
    assert torch.equal(cached(videos=videos[:1], **UINT8)["pixel_values_videos"], expected)
    assert len(decodes) == 1 and entry.read_bytes() == whole


def test_bad_videos_are_remembered_and_raise_again(tmp_path, videos, processor, monkeypatch):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    cached = CachedVideoProcessor(processor, tmp_path / "cache")
    with pytest.raises(ValueError, match="junk.mp4"):
        cached(videos=[videos[0], junk], **UINT8)
    assert list(cached.failed) == [(os.fspath(junk), None, None)]
    refuse_decoding(monkeypatch)  # neither the bad video nor the good one (cached meanwhile) is decoded again
    with pytest.raises(ValueError, match="junk.mp4"):
        cached(videos=[junk], **UINT8)
    assert cached(videos=[videos[0]], **UINT8)["video_mask"].tolist() == [[1, 1, 1, 1]]


def test_a_flipped_bit_in_the_frames_is_decoded_again(tmp_path, videos, processor, monkeypatch):
    cached = CachedVideoProcessor(processor, tmp_path / "cache")
    expected = cached(videos=videos[:1], **UINT8)["pixel_values_videos"]
    key = frame_cache_key(cached.settings, (os.fspath(videos[0]), None, None))
    entry = cached.store.path(key)
    whole = entry.read_bytes()
    stored = np.load(entry, mmap_mode="r")
    flipped = bytearray(whole)
    flipped[stored.offset + stored.nbytes // 2] ^= 0x10  # a payload bit: header, trailer and size intact
    del stored
    entry.write_bytes(bytes(flipped))
    assert np.load(entry).shape == (4, 3, 32, 32)  # still a well-formed .npy of the right size
    assert cached.store.get(key, cached._fingerprint(os.fspath(videos[0]))) is None
    decodes = count_decodes(monkeypatch)
    assert torch.equal(CachedVideoProcessor(processor, tmp_path / "cache")(videos=videos[:1], **UINT8)[
        "pixel_values_videos"], expected)
    assert len(decodes) == 1 and entry.read_bytes() == whole  # decoded again and the entry rewritten


def test_a_video_replaced_with_size_and_mtime_kept_is_decoded_again(tmp_path, processor, monkeypatch):
    """`cp -p` of another clip of the same size over a cached one: same key (path, size, mtime), new content; the
    disk cache (a new run) and the in-memory cache (the same object) both decode it again."""
    clip, other = raw_video(tmp_path / "clip.avi", 1), raw_video(tmp_path / "other.avi", 2)
    assert os.path.getsize(clip) == os.path.getsize(other)
    os.utime(other, ns=(os.stat(clip).st_atime_ns, os.stat(clip).st_mtime_ns))
    expected = processor([other], **UINT8, return_tensors="pt")["pixel_values_videos"]
    in_memory = CachedVideoProcessor(processor)
    before = CachedVideoProcessor(processor, tmp_path / "cache")(videos=[clip], **UINT8)["pixel_values_videos"]
    assert torch.equal(in_memory(videos=[clip], **UINT8)["pixel_values_videos"], before)
    key = frame_cache_key(frame_settings(processor), (clip, None, None))
    subprocess.run(["cp", "-p", other, clip], check=True)
    assert frame_cache_key(frame_settings(processor), (clip, None, None)) == key  # the key cannot tell
    decodes = count_decodes(monkeypatch)
    for cached in (CachedVideoProcessor(processor, tmp_path / "cache"), in_memory):
        after = cached(videos=[clip], **UINT8)["pixel_values_videos"]
        assert torch.equal(after, expected) and not torch.equal(after, before)
    assert len(decodes) == 2  # once each
    refuse_decoding(monkeypatch)  # the rewritten disk entry now serves the new clip
    assert torch.equal(CachedVideoProcessor(processor, tmp_path / "cache")(videos=[clip], **UINT8)[
        "pixel_values_videos"], expected)


def test_a_foreign_folder_is_refused_as_frame_cache_through_the_cli(tmp_path):
    from app_server import save_demo_model

    model_dir, video_dir, _ = save_demo_model(tmp_path / "demo", 2)
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "tvr", "eval", str(model_dir), "--dataset", "jsonl",
                             "--annotations", str(video_dir.parent), "--device", "cpu", "--frame-cache", str(project)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"tvr: error: frame cache folder '{project}' is not a tvr frame "
                                                     "cache folder and "
                                    "holds 'notes.txt'")
    assert os.listdir(project) == ["notes.txt"]
    # a tvr 0.1 cache (entries, no marker) is still the cache's own
    legacy = tmp_path / "legacy"
    (legacy / "ab").mkdir(parents=True)
    (legacy / "ab" / ("ab" + "0" * 62 + ".npy")).write_bytes(b"old entry")
    FrameCache(legacy)
    assert read_marker(legacy) == {"kind": "frame cache", "files": None}
