"""Synthetic videos: deterministic, and the caption says what the decoded frames show, in order."""

import hashlib
import json
import re

import decord
import numpy as np
import pytest

from tvr.data.synthetic import (
    COLORS,
    Event,
    describe,
    event_bounds,
    generate_events,
    make_synthetic_dataset,
    render_frames,
    synthetic_rng,
)

FPS, SIZE, DURATION = 10, 64, 8.0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("synthetic")
    return output_dir, make_synthetic_dataset(output_dir, 12, seed=3, split="test", progress=False)


def observe(frame):
    """What a frame shows, read from pixels only: ``None`` (empty) or (colour, shape, centre x, centre y)."""
    mask = frame.max(axis=-1) > 100
    if mask.sum() < 20:
        return None
    colour = min(COLORS, key=lambda name: np.abs(frame[mask].mean(0) - COLORS[name]).sum())
    ys, xs = np.nonzero(mask)
    fill = mask.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))  # square 1, circle pi/4, triangle 1/2
    shape = "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"
    return colour, shape, xs.mean() + 0.5, ys.mean() + 0.5


def read_caption(frames_at_seconds, bounds):
    """The caption a viewer of the 1-fps frames would write, given the event spans."""
    phrases = []
    for start, end in bounds:
        seen = [observe(frames_at_seconds[t]) for t in range(int(start), int(end))]
        shown = [s for s in seen if s is not None]
        colour, shape = shown[0][:2]
        assert all(s[:2] == (colour, shape) for s in shown)
        if seen[0] is None:
            action = "appears"
        elif seen[-1] is None:
            action = "disappears"
        else:
            dx, dy = shown[-1][2] - shown[0][2], shown[-1][3] - shown[0][3]
            assert max(abs(dx), abs(dy)) > 15 and min(abs(dx), abs(dy)) < 1  # a clear straight move
            action = "moves " + (("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up"))
        phrases.append(f"a {colour} {shape} {action}")
    return ", then ".join(phrases)


def test_caption_matches_decoded_frames_in_order(synthetic):
    output_dir, dataset = synthetic
    assert dataset.column_names == ["video_id", "video_path", "caption", "caption_index", "start", "end"]
    assert dataset["video_id"] == [f"test_{i:05d}" for i in range(12)]
    actions = set()
    for row in dataset:
        reader = decord.VideoReader(row["video_path"])
        assert (len(reader), reader.get_avg_fps()) == (DURATION * FPS, FPS)
        frames = reader.get_batch(list(range(0, len(reader), FPS))).asnumpy()  # 1 fps, as CLIP4Clip samples
        num_events = row["caption"].count(", then ") + 1
        assert read_caption(frames, event_bounds(DURATION, num_events)) == row["caption"]
        actions |= set(re.findall(r"(moves \w+|disappears|appears)", row["caption"]))
    assert len(actions) >= 5  # the check covered motion, appearing and disappearing


def test_annotation_file_records_events(synthetic):
    output_dir, dataset = synthetic
    records = [json.loads(line) for line in (output_dir / "test.jsonl").read_text().splitlines()]
    assert [r["video_path"] for r in records] == [f"videos/test_{i:05d}.mp4" for i in range(12)]
    for record, row in zip(records, dataset):
        events = [Event(**{k: tuple(v) if isinstance(v, list) else v for k, v in e.items()}) for e in record["events"]]
        assert describe(events) == record["caption"] == row["caption"]
        assert events == generate_events(synthetic_rng(3, "test", int(row["video_id"][-5:])), SIZE, DURATION)


def test_same_seed_same_files_other_seed_or_split_differs(synthetic, tmp_path):
    output_dir, dataset = synthetic
    again = make_synthetic_dataset(tmp_path, 4, seed=3, split="test", progress=False)
    assert again["caption"] == dataset["caption"][:4]  # video i depends only on (seed, split, i)
    for new, old in zip(again["video_path"], dataset["video_path"]):
        assert hashlib.sha256(open(new, "rb").read()).digest() == hashlib.sha256(open(old, "rb").read()).digest()

    def captions(seed, split):
        return [describe(generate_events(synthetic_rng(seed, split, i), SIZE, DURATION)) for i in range(100)]

    test = captions(3, "test")
    assert test[:12] == dataset["caption"]
    assert len(set(test)) >= 98  # 100 held-out videos have (almost) distinct captions
    assert sum(a == b for a, b in zip(test, captions(4, "test"))) <= 2
    assert sum(a == b for a, b in zip(test, captions(3, "train"))) <= 2


def test_render_hand_built_events():
    square = Event("red", "square", "moves right", 0.0, 3.0, 10.0, (15.0, 20.0), (49.0, 20.0))
    circle = Event("blue", "circle", "appears", 3.0, 5.0, 8.0, (30.0, 40.0), (30.0, 40.0))
    assert describe([square, circle]) == "a red square moves right, then a blue circle appears"
    frames = render_frames([square, circle], SIZE, FPS, 5.0)
    assert frames.shape == (50, SIZE, SIZE, 3)
    # t = 0, 1, 2 s: the square's centre goes 15 -> 32 -> 49 (reaching the end on the event's last second)
    for second, x in ((0, 15), (1, 32), (2, 49)):
        ys, xs = np.nonzero((frames[second * FPS] == COLORS["red"]).all(-1))
        assert (xs.mean() + 0.5, ys.mean() + 0.5) == pytest.approx((x, 20), abs=0.5)
        assert np.ptp(xs) + 1 == 18  # side 1.8 r
    assert frames[3 * FPS].max() == 0 and frames[39].max() == 0  # the circle is not there yet during [3, 4) s
    ys, xs = np.nonzero((frames[4 * FPS] == COLORS["blue"]).all(-1))
    assert (xs.mean() + 0.5, ys.mean() + 0.5) == pytest.approx((30, 40), abs=0.5) and len(xs) == pytest.approx(
        np.pi * 64, rel=0.05)


def test_event_bounds_and_sizes():
    assert event_bounds(8.0, 3) == [(0.0, 3.0), (3.0, 5.0), (5.0, 8.0)]
    assert event_bounds(8.0, 2) == [(0.0, 4.0), (4.0, 8.0)]
    with pytest.raises(ValueError, match="too short for 3 events"):
        event_bounds(5.0, 3)
    for i in range(50):  # shapes stay big and inside the frame, events last >= 2 s
        for event in generate_events(np.random.default_rng(i), 32, DURATION):
            assert event.end - event.start >= 2 and 0.18 * 32 <= event.radius <= 0.24 * 32
            for x, y in (event.origin, event.target):
                assert event.radius < x < 32 - event.radius and event.radius < y < 32 - event.radius
