"""Moment search (issue 25, parts 1-2): windows decoded once per video, windows as index rows (built, sharded,
resumed, saved, loaded, two processes), `search_moments` with per-video NMS and refinement on videos with a known
answer, `tvr index --windows` -> `tvr search --moments --json` as typed, and the pipeline's moments.

Known answers come from colour videos (segments of solid red, green, blue) and `ColourModel`, a tiny CLIP4Clip whose
encoders are replaced by colour detectors: a frame's feature is its mean colour, a caption's the colours it names, so
the best window for "red" is the one that is all red."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app_server import save_demo_model
from model_testers import tiny_clip4clip_config
from stand_ins import word_tokenizer
from tvr.data.synthetic import write_video
from tvr.evaluation.moments import temporal_iou
from tvr.methods.clip4clip.modeling import CLIP4ClipModel
from tvr.modeling.outputs import TextEncoding, concat_encodings
from tvr.processing import TVRProcessor, TVRVideoProcessor
from tvr.processing.encode_loop import encode_video_batches
from tvr.processing.windows import encode_windows, plan_windows
from tvr.retrieval import VideoIndex

REPO = Path(__file__).resolve().parents[1]
COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}
FPS = 2


class ColourModel(CLIP4ClipModel):
    """CLIP4Clip meanP whose frame features are the frames' mean colour (channels above the mean, as the first
    3 of its projection dims) and whose caption features are the colours the caption names: windows are scored by
    the model's own head and similarity on features a test can reason about."""

    colour_ids: dict[str, int] = {}

    def encode_video(self, pixel_values_videos, video_mask=None):
        channels = pixel_values_videos.float().mean(dim=(-1, -2))  # (batch, frames, 3), normalised values
        features = torch.zeros(*channels.shape[:2], self.config.projection_dim)
        features[..., :3] = torch.relu(channels)
        return self.encode_frame_features(features, video_mask)

    def encode_text(self, input_ids, attention_mask=None):
        features = torch.zeros(len(input_ids), self.config.projection_dim)
        for channel, colour in enumerate(COLOURS):
            features[:, channel] = (input_ids == self.colour_ids[colour]).any(dim=1).float()
        return TextEncoding(text_features=features, attention_mask=attention_mask)


def colour_video(path: Path, segments: list[tuple[str, float]], size: int = 24) -> str:
    """A video of solid colour segments ``[(colour, seconds), ...]`` at :data:`FPS`."""
    frames = [np.full((size, size, 3), COLOURS[colour], dtype=np.uint8)
              for colour, seconds in segments for _ in range(int(seconds * FPS))]
    return write_video(path, np.stack(frames), fps=FPS)


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    """``(model, processor, videos)``: the colour model, a processor (1 frame a second, 4 frames: a 4 s clip) and
    colour videos by name."""
    root = tmp_path_factory.mktemp("colours")
    tokenizer = word_tokenizer(root / "tokenizer")
    processor = TVRProcessor(TVRVideoProcessor(size=16, crop_size=16, max_frames=4), tokenizer, max_words=8)
    model = ColourModel(tiny_clip4clip_config("meanP")).eval()
    model.colour_ids = {colour: tokenizer.convert_tokens_to_ids(colour) for colour in COLOURS}
    videos = {
        "middle": colour_video(root / "middle.mp4", [("blue", 4), ("red", 4), ("green", 4)]),
        "green": colour_video(root / "green.mp4", [("green", 12)]),
        "twice": colour_video(root / "twice.mp4", [("red", 4), ("blue", 4), ("red", 4)]),
        "twice-too": colour_video(root / "twice-too.mp4", [("red", 4), ("blue", 4), ("red", 4)]),
        "late": colour_video(root / "late.mp4", [("blue", 5), ("red", 4), ("green", 3)]),
    }
    return model, processor, videos


def spans(moments) -> list[tuple[str, float, float]]:
    return [(Path(moment.path).stem, moment.start, moment.end) for moment in moments]


def test_each_needed_frame_is_decoded_once_for_all_windows_and_scales(colours, monkeypatch):
    import tvr.processing.decoding as decoding

    model, processor, videos = colours
    decoded, read_frames = [], decoding.read_frames
    monkeypatch.setattr(decoding, "read_frames", lambda reader, indices, *args, **kwargs: (
        decoded.extend(np.asarray(indices).tolist()), read_frames(reader, indices, *args, **kwargs))[1])
    video = videos["middle"]
    windowed = encode_windows(model, processor, [video], [4.0, 8.0], stride=0.5, batch_size=3)
    planned = plan_windows(12.0, [4.0, 8.0], stride=0.5)
    assert [(start, end) for _, start, end in windowed.rows] == planned and len(planned) == 7
    # 1 frame a second at 2 fps: frames 0, 2, ..., 22, each decoded once although 7 windows of 2 scales sample them
    assert sorted(decoded) == list(range(0, 24, 2))
    # equal to the processor's own clip of each window, decoded window by window
    per_window = encode_video_batches(model, processor, [video] * len(planned), 3,
                                      starts=[start for start, _ in planned], ends=[end for _, end in planned])
    assert len(decoded) == 12  # (the per-window path decodes through the processor, not counted above)
    torch.testing.assert_close(concat_encodings(windowed.encodings).video_embeds,
                               concat_encodings(per_window.encodings).video_embeds, atol=1e-6, rtol=1e-6)


def test_ranked_windows_become_moments_and_videos_on_hand_ranked_rows():
    from tvr.retrieval.moments import best_window_per_video, select_moments

    paths, starts, ends = ["a", "a", "a", "b", "b"], [0, 2, 8, 0, 1], [4, 6, 12, 4, 5]
    rows, scores = np.array([1, 0, 3, 4, 2, -1]), np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.0])
    # a: 2-6 kept; 0-4 overlaps it by 2/6 < 0.5: kept; b: 0-4 kept, 1-5 overlaps it by 3/5: dropped; a: 8-12 kept;
    # equal scores keep their rank order; the -1 row (nothing found) is skipped
    assert select_moments(paths, starts, ends, rows, scores, 0.5, 10) == [(1, 0.9), (0, 0.8), (3, 0.8), (2, 0.6)]
    assert select_moments(paths, starts, ends, rows, scores, 0.3, 2) == [(1, 0.9), (3, 0.8)]
    assert best_window_per_video(paths, rows, scores, 10) == [(1, 0.9), (3, 0.8)]


def test_search_moments_finds_the_known_segment_and_search_returns_each_video_once(colours):
    model, processor, videos = colours
    index = VideoIndex.build(model, processor, [videos["middle"], videos["green"]], windows="4,8", stride=0.5,
                             progress=False)
    # 12 s: 4 s windows at 0, 2, 4, 6, 8 and 8 s windows at 0, 4, for each of the two videos
    assert len(index) == 14 and index.windows == {"scales": [4.0, 8.0], "stride": 0.5}
    assert list(zip(index.starts, index.ends))[:7] == plan_windows(12.0, [4.0, 8.0], 0.5)
    best = index.search_moments("red", top_k=3)
    assert spans(best)[0] == ("middle", 4.0, 8.0)  # all red: IoU 1 with the red segment
    assert temporal_iou([best[0][1:3]], [(4.0, 8.0)])[0, 0] == 1.0
    assert [moment.score for moment in best] == sorted((moment.score for moment in best), reverse=True)
    # plain search on windows: videos, each once, at its best window's score
    results = index.search("red", top_k=10)
    assert [Path(path).stem for path, _ in results] == ["middle", "green"]
    assert results[0].score == pytest.approx(best[0].score)


def test_nms_keeps_the_non_overlapping_moments_of_each_video(colours):
    model, processor, videos = colours
    index = VideoIndex.build(model, processor, [videos["twice"], videos["twice-too"]], windows=[4], stride=0.5,
                             progress=False)
    found = index.search_moments("red", top_k=4, nms_iou=0.3)
    # both red segments of both videos: windows of one video never suppress another video's
    assert sorted(spans(found)) == [("twice", 0.0, 4.0), ("twice", 8.0, 12.0), ("twice-too", 0.0, 4.0),
                                    ("twice-too", 8.0, 12.0)]
    for threshold in (0.3, 0.5):
        found = index.search_moments("red", top_k=10, nms_iou=threshold)
        for video in ("twice", "twice-too"):
            kept = [(start, end) for name, start, end in spans(found) if name == video]
            overlaps = temporal_iou(kept, kept)[~np.eye(len(kept), dtype=bool)]
            assert (overlaps < threshold).all()
    # 2-6 overlaps 0-4 with IoU 1/3: kept at 0.5, suppressed at 0.3
    assert ("twice", 2.0, 6.0) in spans(index.search_moments("red", top_k=10, nms_iou=0.5))
    assert ("twice", 2.0, 6.0) not in spans(index.search_moments("red", top_k=10, nms_iou=0.3))


def test_refinement_moves_the_boundaries_onto_the_segment(colours):
    model, processor, videos = colours
    index = VideoIndex.build(model, processor, [videos["late"]], windows=[4], stride=1.0, progress=False)
    assert list(zip(index.starts, index.ends)) == [(0.0, 4.0), (4.0, 8.0), (8.0, 12.0)]
    plain, = index.search_moments("red", top_k=1)
    refined, = index.search_moments("red", top_k=1, refine=True)
    truth = [(5.0, 9.0)]  # red from 5 s to 9 s
    assert (plain.start, plain.end) == (4.0, 8.0) and temporal_iou([plain[1:3]], truth)[0, 0] == pytest.approx(0.6)
    assert temporal_iou([refined[1:3]], truth)[0, 0] >= 0.75 and refined.score > plain.score


@pytest.mark.filterwarnings("ignore:1 of 4 videos could not be decoded")
def test_windows_survive_save_load_and_resumed_shards(colours, tmp_path):
    from tvr.retrieval.shards import encode_shards

    model, processor, videos = colours
    paths = [videos[name] for name in ("middle", "green", "twice")] + [str(tmp_path / "missing.mp4")]
    reference = VideoIndex.build(model, processor, paths, windows=[4, 8], progress=False, batch_size=2)
    windows = reference.windows
    # a run stopped after process 1 of 2 did its shards, then resumed by one process
    assert encode_shards(model, processor, paths, tmp_path / "partial", shard_size=2, batch_size=2, rank=1,
                         world_size=2, progress=False, windows=windows) == [1]
    resumed = VideoIndex.build(model, processor, paths, windows=[4, 8], progress=False, batch_size=2,
                               resume_dir=tmp_path / "partial")
    reference.save(tmp_path / "index")
    loaded = VideoIndex.load(tmp_path / "index", model=model, processor=processor)
    for index in (resumed, loaded):
        assert (index.paths, index.starts, index.ends, index.windows) == \
            (reference.paths, reference.starts, reference.ends, windows)
        assert torch.equal(index.encoding.video_embeds, reference.encoding.video_embeds)
        assert list(index.failed) == [str(tmp_path / "missing.mp4")]
        assert index.search_moments(["red", "blue"], top_k=5) == reference.search_moments(["red", "blue"], top_k=5)
    config = json.loads((tmp_path / "index" / "index_config.json").read_text())
    assert config["windows"] == {"scales": [4.0, 8.0], "stride": 0.5}
    # other windows in the same resume folder: refused, naming both
    with pytest.raises(ValueError, match="encodings of other windows"):
        encode_shards(model, processor, paths, tmp_path / "partial", shard_size=2, batch_size=2, progress=False,
                      windows={"scales": [4.0], "stride": 0.5})
    # an index without windows has no moments
    whole = VideoIndex.build(model, processor, paths[:2], progress=False)
    with pytest.raises(ValueError, match="this index has no windows.*--windows"):
        whole.search_moments("red")


def test_an_update_windows_new_videos_as_the_index_was_built(colours, tmp_path):
    """A windowed index updated in place (a video added, one removed) equals a fresh windowed build of the final
    collection: the same rows (paths, starts, ends), encodings and moments; the saved folder loads back equal."""
    model, processor, videos = colours
    before = [videos["middle"], videos["green"]]
    after = [videos["green"], videos["late"]]
    index = VideoIndex.build(model, processor, before, windows=[4, 8], progress=False, batch_size=2)
    index.save(tmp_path / "index")
    index = VideoIndex.load(tmp_path / "index", model=model, processor=processor)
    report = index.update(after, batch_size=2, progress=False)
    assert (report.added, report.removed, report.kept) == ([videos["late"]], [videos["middle"]], 1)
    fresh = VideoIndex.build(model, processor, after, windows=[4, 8], progress=False, batch_size=2)
    index.save(tmp_path / "index")
    loaded = VideoIndex.load(tmp_path / "index", model=model, processor=processor)
    for updated in (index, loaded):
        order = sorted(range(len(updated)), key=lambda row: (updated.paths[row], updated.starts[row],
                                                              updated.ends[row]))
        expected = sorted(range(len(fresh)), key=lambda row: (fresh.paths[row], fresh.starts[row], fresh.ends[row]))
        assert [(updated.paths[row], updated.starts[row], updated.ends[row]) for row in order] == \
            [(fresh.paths[row], fresh.starts[row], fresh.ends[row]) for row in expected]
        torch.testing.assert_close(updated.select_rows(order).video_embeds, fresh.select_rows(expected).video_embeds)
        assert spans(updated.search_moments("red", top_k=3)) == spans(fresh.search_moments("red", top_k=3))
    assert loaded.windows == fresh.windows == {"scales": [4.0, 8.0], "stride": 0.5}


# ------------------------------------------------------------------------------------------ as a user types it


def tvr(*args, launcher=("-m", "tvr")) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *launcher, *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's tiny saved model, and a folder of three 8 s colour videos."""
    root = tmp_path_factory.mktemp("journey")
    model_dir, _, _ = save_demo_model(root, 1)
    for name, segments in {"a": [("red", 4), ("blue", 4)], "b": [("green", 8)], "c": [("blue", 2), ("red", 6)]}.items():
        colour_video(root / "videos" / f"{name}.mp4", segments, size=32)
    return model_dir, root / "videos"


def test_index_windows_then_search_moments_as_typed(demo, tmp_path, capsys):
    from tvr.cli import console_main

    model_dir, video_dir = demo
    index_dir = tmp_path / "videos.index"
    run = tvr("index", model_dir, video_dir, index_dir, "--windows", "2,4", "--stride", "0.5", "--device", "cpu",
              "--batch-size", "4")
    assert run.returncode == 0, run.stderr
    # 8 s: 2 s windows at 0, 1, ..., 6 and 4 s windows at 0, 2, 4: 10 rows per video
    assert "indexed 3 videos as 30 windows" in run.stdout
    run = tvr("search", index_dir, "a red square", "--moments", "--top-k", "4", "--json", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    [answer] = json.loads(run.stdout)
    index = VideoIndex.load(index_dir, device="cpu")
    expected = index.search_moments("a red square", top_k=4)
    assert [(r["path"], r["start"], r["end"], r["rank"]) for r in answer["results"]] == \
        [(m.path, m.start, m.end, rank) for rank, m in enumerate(expected, start=1)]
    assert [r["score"] for r in answer["results"]] == pytest.approx([m.score for m in expected])
    # the same in text: rank. score path start-end
    assert console_main(["search", str(index_dir), "a red square", "--moments", "--top-k", "4", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[2:] == [expected[0].path, f"{expected[0].start:.2f}-{expected[0].end:.2f}"]
    # plain search of a windowed index: videos, each once
    assert console_main(["search", str(index_dir), "a red square", "--json", "--device", "cpu"]) == 0
    paths = [result["path"] for result in json.loads(capsys.readouterr().out)[0]["results"]]
    assert sorted(paths) == sorted(str(path) for path in video_dir.glob("*.mp4"))
    assert console_main(["search", str(index_dir), "--info"]) == 0
    assert "windows: 2, 4 s, stride 0.5" in capsys.readouterr().out

    # an index of whole videos: --moments says to rebuild with --windows, in one line
    assert console_main(["index", str(model_dir), str(video_dir), str(tmp_path / "whole.index"), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert console_main(["search", str(tmp_path / "whole.index"), "red", "--moments", "--device", "cpu"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"tvr: error: index '{tmp_path / 'whole.index'}': this index has no windows") and "--windows" in error and "\n" not in error


def test_tvr_index_windows_resumes_a_partial_run(demo, tmp_path, monkeypatch, capsys):
    import tvr.retrieval.shards as shards
    from tvr.cli import console_main
    from tvr.retrieval.index import load_model_and_processor, model_weights_fingerprint

    model_dir, video_dir = demo
    index_dir = tmp_path / "videos.index"
    paths = shards.list_video_files(video_dir)
    model, processor = load_model_and_processor(model_dir, "cpu")
    windows = {"scales": [2.0, 4.0], "stride": 0.5}
    # a run killed after process 1 of 2 finished its shard (shard 1: the second video)
    assert shards.encode_shards(model, processor, paths, f"{index_dir}.partial", shard_size=1, batch_size=1, rank=1,
                                world_size=2, progress=False, weights=model_weights_fingerprint(model_dir),
                                windows=windows) == [1]
    encoded, encode_windows = [], shards.encode_windows
    monkeypatch.setattr(shards, "encode_windows", lambda model, processor, videos, *args, **kwargs: (
        encoded.extend(videos), encode_windows(model, processor, videos, *args, **kwargs))[1])
    assert console_main(["index", str(model_dir), str(video_dir), str(index_dir), "--windows", "2,4", "--batch-size",
                         "1", "--device", "cpu"]) == 0
    assert "indexed 3 videos as 30 windows" in capsys.readouterr().out
    assert encoded == [paths[0], paths[2]]  # the finished shard was kept
    resumed = VideoIndex.load(index_dir, device="cpu")
    uninterrupted = VideoIndex.build(model, processor, paths, windows=[2, 4], batch_size=1, progress=False)
    assert (resumed.paths, resumed.starts, resumed.ends, resumed.windows) == \
        (uninterrupted.paths, uninterrupted.starts, uninterrupted.ends, windows)
    assert torch.equal(resumed.encoding.video_embeds, uninterrupted.encoding.video_embeds)


def test_two_processes_index_the_same_windows_as_one(demo, tmp_path):
    model_dir, video_dir = demo
    one, two = tmp_path / "one.index", tmp_path / "two.index"
    options = ["--windows", "2,1x", "--device", "cpu", "--batch-size", "2", "--shard-size", "1"]
    assert tvr("index", model_dir, video_dir, one, *options).returncode == 0
    run = tvr("index", model_dir, video_dir, two, *options,
              launcher=("-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "tvr.retrieval"))
    assert run.returncode == 0, run.stdout + run.stderr
    single, double = VideoIndex.load(one, device="cpu"), VideoIndex.load(two, device="cpu")
    # 1x = the demo processor's clip length
    assert (double.paths, double.starts, double.ends, double.windows) == \
        (single.paths, single.starts, single.ends, single.windows)
    assert torch.equal(double.encoding.video_embeds, single.encoding.video_embeds)


def test_the_pipelines_moments_are_search_moments(demo, tmp_path):
    from transformers import pipeline

    model_dir, video_dir = demo
    index = VideoIndex.from_model_dir(model_dir, video_dir, device="cpu", windows=[2, 4], progress=False)
    index.save(tmp_path / "index")
    retriever = pipeline("video-text-retrieval", model=str(model_dir), device="cpu")
    queries = ["a red square", "a green circle"]
    answers = retriever(queries, index=tmp_path / "index", moments=True, top_k=3)
    loaded = retriever.load_index(tmp_path / "index")
    for answer, moments in zip(answers, loaded.search_moments(queries, top_k=3)):
        assert [(r["video"], r["start"], r["end"], r["score"]) for r in answer] == \
            [(m.path, m.start, m.end, m.score) for m in moments]
        assert {r["score_name"] for r in answer} == {"similarity"}
    with pytest.raises(ValueError, match="moments=True searches an index"):
        retriever("a red square", videos=[str(next(video_dir.glob("*.mp4")))], moments=True)


# ------------------------------------------------------------------------------------------ the app


@pytest.fixture(scope="module")
def windowed_index(demo, tmp_path_factory):
    """A saved index of the demo videos as 2 s windows, half overlapping."""
    model_dir, video_dir = demo
    index_dir = tmp_path_factory.mktemp("app-index") / "videos.index"
    VideoIndex.from_model_dir(model_dir, video_dir, device="cpu", windows=[2], progress=False).save(index_dir)
    return index_dir


def test_the_app_answers_with_moments_and_plays_from_their_start(demo, windowed_index):
    from tvr.app import RetrievalDemo

    model_dir, video_dir = demo
    app = RetrievalDemo(model_dir, index=windowed_index, device="cpu")
    gallery, table, spans = app.search_results("a red square", top_k=3)
    expected = app.index.search_moments("a red square", top_k=3)
    assert spans == [(m.path, m.start, m.end) for m in expected]
    assert "| rank | video | moment (s) | similarity |" in table
    first = expected[0]
    assert f"| 1 | {Path(first.path).name} | {first.start:.2f}-{first.end:.2f} s |" in table
    assert gallery[0] == (first.path, f"1. {Path(first.path).name} {first.start:.2f}-{first.end:.2f} s "
                                      f"({first.score:.3f})")
    assert "3 videos indexed as 21 windows" in app.describe()
    player = app.player(*spans[0])
    assert f"#t={first.start:g},{first.end:g}" in player and f'data-start="{first.start:g}"' in player
    assert app.player(str(video_dir / "not-indexed.mp4"), 0.0, 2.0) == ""  # only indexed files are served


def test_clicking_a_moment_plays_it_from_its_start_in_a_browser(demo, windowed_index, tmp_path):
    from app_server import free_port
    from test_app import CHROMIUM_FLAGS, browser_or_skip

    sync_api, chromium = browser_or_skip()
    from tvr.app import RetrievalDemo
    from tvr.app.ui import launch

    model_dir, _ = demo
    query = "a red square"
    app = RetrievalDemo(model_dir, index=windowed_index, device="cpu")
    moments = app.index.search_moments(query, top_k=5)
    rank = next(rank for rank, moment in enumerate(moments) if moment.start > 0)  # a moment that is not the start
    port = free_port()
    page_server = launch(app, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)  # in this process
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.set_default_timeout(90_000)
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_label("Query").fill(query)
                page.get_by_role("button", name="Search").click()
                page.locator("#search-results table").wait_for()
                page.locator("#search-gallery").get_by_text(f"{rank + 1}. ").click()
                video = page.locator("#moment-player video")
                video.wait_for()
                page.wait_for_function("document.querySelector('#moment-player video').readyState >= 1")
                current = video.evaluate("element => element.currentTime")
                page.screenshot(path=tmp_path / "app-moment.png", full_page=True)
            finally:
                browser.close()
    finally:
        page_server.close()
    assert moments[rank].start <= current <= moments[rank].end + 0.5, (current, moments[rank])
