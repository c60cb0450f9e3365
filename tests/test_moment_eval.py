"""Moment evaluation (issue 25.3): the moment readers (Charades-STA, DiDeMo, generic), the long synthetic videos,
``evaluate_moments`` with a stand-in whose answers are counted by hand, ``tvr eval --task moments`` -> ``tvr card``."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from stand_ins import word_tokenizer
from tvr.data.moments import didemo_moment, load_moments
from tvr.data.synthetic import COLORS, Event, make_moment_dataset, render_frames, write_video
from tvr.evaluation.moments import MomentEvaluationOptions, evaluate_moments, moment_baselines, moment_metrics
from tvr.modeling.outputs import TextEncoding, VideoEncoding
from tvr.processing import TVRProcessor, TVRVideoProcessor

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------- readers
def test_charades_sta_rows_and_missing_videos_listed(tmp_path):
    folder = tmp_path / "charades"
    folder.mkdir()
    (folder / "charades_sta_test.txt").write_text(
        "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n\n"
        "AO8RW 3.5 12##person begins to play on a phone.\n"
        "Y6R7T 10.2 17.45##the person closes the door.\n")
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "AO8RW.mp4").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"1 of 2 videos not found \(Y6R7T\)"):
        moments = load_moments("charades-sta", folder, videos, split="test")
    assert moments.to_list() == [
        dict(video_id="AO8RW", video_path=str(videos / "AO8RW.mp4"), caption="a person is putting a book on a shelf.",
             caption_index=0, start=0.0, end=6.9),
        dict(video_id="AO8RW", video_path=str(videos / "AO8RW.mp4"), caption="person begins to play on a phone.",
             caption_index=1, start=3.5, end=12.0),
        dict(video_id="Y6R7T", video_path="", caption="the person closes the door.", caption_index=0, start=10.2,
             end=17.45),
    ]
    # the file itself works too, and a damaged line is named
    assert len(load_moments("charades-sta", folder / "charades_sta_test.txt")) == 3
    (folder / "bad.txt").write_text("AO8RW 0.0 6.9##fine\nAO8RW 8.0##no end\n")
    with pytest.raises(ValueError, match=r"bad.txt line 2: expected 'VIDEOID START END##sentence'"):
        load_moments("charades-sta", folder / "bad.txt")
    (folder / "bad.txt").write_text("AO8RW 6.9 6.9##a moment of no length\n")
    with pytest.raises(ValueError, match=r"bad.txt line 1: the moment ends \(6.9 s\) at or before its start"):
        load_moments("charades-sta", folder / "bad.txt")


def test_didemo_moments_take_the_span_most_annotators_gave_in_seconds(tmp_path):
    items = [
        {"video": "a@N01_1.mp4", "description": "the dog jumps", "times": [[1, 1], [2, 2]]},  # tie: the first
        {"video": "a@N01_1.mp4", "description": "the dog lies down", "times": [[3, 5], [0, 1], [0, 1]]},
        {"video": "b@N02_2.mov", "description": "a car passes", "times": [[5, 5]], "num_segments": 6},
    ]
    (tmp_path / "test_data.json").write_text(json.dumps(items))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a@N01_1.mp4").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"1 of 2 videos not found \(b@N02_2.mov\)"):
        moments = load_moments("didemo", tmp_path, videos)
    assert [(row["video_id"], row["caption"], row["caption_index"], row["start"], row["end"], row["video_path"])
            for row in moments] == [
        ("a@N01_1.mp4", "the dog jumps", 0, 5.0, 10.0, str(videos / "a@N01_1.mp4")),
        ("a@N01_1.mp4", "the dog lies down", 1, 0.0, 10.0, str(videos / "a@N01_1.mp4")),
        ("b@N02_2.mov", "a car passes", 0, 25.0, 30.0, ""),
    ]
    with pytest.raises(ValueError, match=r"item 0 field 'times'\[1\]: expected \[first, last\] chunk indices"):
        didemo_moment([[1, 1], [3, 2]], "item 0")


def test_didemo_moments_of_the_published_test_file(shared_annotations):
    moments = load_moments("didemo", shared_annotations / "didemo", split="test")
    assert len(moments) == 4021
    # times [[4,4],[4,4],[0,0],[4,4],[0,0],[0,0],[4,4]]: (4,4) four times -> 20-25 s
    assert (moments[0]["caption"], moments[0]["start"], moments[0]["end"]) == (
        "someone kicks the bug towards some rocks.", 20.0, 25.0)
    # times [[2,2],[1,2],[1,1],[2,2]] -> (2,2): 10-15 s
    assert (moments[1]["start"], moments[1]["end"]) == (10.0, 15.0)


def test_a_generic_file_needs_a_moment_on_every_record(tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"")
    (tmp_path / "test.jsonl").write_text('{"video_path": "v.mp4", "caption": "a cat", "start": 1, "end": 3}\n'
                                         '{"video_path": "v.mp4", "caption": "a dog"}\n')
    with pytest.raises(ValueError, match=r"test.jsonl record 2 \(video 'v.mp4'\): no moment"):
        load_moments("jsonl", tmp_path / "test.jsonl")
    (tmp_path / "test.jsonl").write_text('{"video_path": "v.mp4", "caption": "a cat", "start": 1, "end": 3}\n')
    assert load_moments("jsonl", tmp_path / "test.jsonl").to_list() == [
        dict(video_id="v.mp4", video_path=str(tmp_path / "v.mp4"), caption="a cat", caption_index=0, start=1.0,
             end=3.0)]


# -------------------------------------------------------------------------------------------- long synthetic videos
def test_long_synthetic_videos_hold_consecutive_captioned_events(tmp_path):
    from tvr.processing.windows import video_duration

    moments = make_moment_dataset(tmp_path / "long", 3, size=32, fps=2, num_events=(3, 6), event_seconds=(3, 8),
                                  progress=False)
    records = [json.loads(line) for line in (tmp_path / "long" / "test.jsonl").read_text().splitlines()]
    assert [(row["caption"], row["start"], row["end"]) for row in moments] == [
        (record["caption"], record["start"], record["end"]) for record in records]
    for video_id in dict.fromkeys(moments["video_id"]):
        rows = [row for row in moments if row["video_id"] == video_id]
        assert 3 <= len(rows) <= 6
        assert rows[0]["start"] == 0 and all(a["end"] == b["start"] for a, b in zip(rows, rows[1:]))
        assert all(3 <= row["end"] - row["start"] <= 8 for row in rows)
        objects = [" ".join(row["caption"].split()[1:3]) for row in rows]  # "red square"
        assert len(set(objects)) == len(objects)  # each caption names one span
        assert video_duration(rows[0]["video_path"]) == pytest.approx(rows[-1]["end"])
    again = make_moment_dataset(tmp_path / "again", 3, size=32, fps=2, progress=False)
    assert again["caption"] == moments["caption"] and again["end"] == moments["end"]  # seeded


# --------------------------------------------------------------------------------------------------- evaluation
class ColourModel(torch.nn.Module):
    """A stand-in with answers counted by hand: a caption is the colour it names, a clip the fraction of its frames
    showing each colour; a caption scores a clip by the fraction of the clip's frames showing its colour."""

    def __init__(self, tokenizer):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # where the model runs
        self.colour_ids = torch.tensor([tokenizer.convert_tokens_to_ids(colour) for colour in COLORS])
        self.palette = torch.tensor(list(COLORS.values()), dtype=torch.float32) / 255

    def encode_text(self, input_ids, attention_mask):
        named = (input_ids[:, :, None] == self.colour_ids).any(1).float()
        return TextEncoding(text_features=named, attention_mask=attention_mask)

    def encode_video(self, pixel_values_videos, video_mask):
        pixels = pixel_values_videos.permute(0, 1, 3, 4, 2).flatten(2, 3)  # (videos, frames, pixels, rgb) in [0, 1]
        near = ((pixels[:, :, :, None, :] - self.palette).abs().amax(-1) < 0.1).sum(2) >= 4  # (videos, frames, 5)
        shows = near.float() * video_mask[..., None]
        return VideoEncoding(video_mask=video_mask, video_embeds=shows.sum(1) / video_mask.sum(1, keepdim=True))

    def score_gallery(self, text_encoding, video_encoding, block_size=None, progress=False):
        return text_encoding.text_features @ video_encoding.video_embeds.T


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory):
    """A 12 s video (2 fps, 32 px): a red square [0, 4) s, a blue circle [4, 8) s, a green triangle [8, 12) s."""
    folder = tmp_path_factory.mktemp("colours")
    events = [Event("red", "square", "moves right", 0.0, 4.0, 7.0, (9.0, 16.0), (23.0, 16.0)),
              Event("blue", "circle", "moves left", 4.0, 8.0, 7.0, (23.0, 16.0), (9.0, 16.0)),
              Event("green", "triangle", "moves up", 8.0, 12.0, 7.0, (16.0, 23.0), (16.0, 9.0))]
    return write_video(folder / "colours.mp4", render_frames(events, size=32, fps=2, duration=12.0), fps=2)


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    tokenizer = word_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    # 1 frame a second, up to 16 (no window is sliced), frames kept in [0, 1] (mean 0, std 1)
    video_processor = TVRVideoProcessor(fps=1, max_frames=16, size=32, crop_size=32, image_mean=[0.0] * 3,
                                        image_std=[1.0] * 3)
    return ColourModel(tokenizer), TVRProcessor(video_processor, tokenizer, max_words=16)


def colour_moments(video):
    from datasets import Dataset

    return Dataset.from_list([
        dict(video_id="colours", video_path=video, caption="a red square moves right", start=0.0, end=4.0),
        dict(video_id="gone", video_path="", caption="a red circle appears", start=0.0, end=2.0),  # missing file
        dict(video_id="colours", video_path=video, caption="a blue circle moves left", start=4.0, end=8.0),
        dict(video_id="colours", video_path=video, caption="a green triangle moves up", start=7.0, end=14.0),
        dict(video_id="colours", video_path=video, caption="a yellow square appears", start=2.0, end=6.0),
    ])


def test_evaluate_moments_on_hand_counted_windows(colour_video, colour_model):
    model, processor = colour_model
    with pytest.warns(UserWarning, match="1 of 2 videos.*left out of the moment evaluation"):
        result = evaluate_moments(model, processor, colour_moments(colour_video), windows="4,8", stride=0.5,
                                  progress=False)
    # windows of the 12 s video: 4 s at 0,2,4,6,8 and 8 s at 0,4; a window [s, e] samples the frames at seconds
    # s..e (inclusive, within the video): [0,4] is 4 red + 1 blue frames -> red 0.8; [2,6] 2 red + 3 blue; ...
    assert result.windows == [4.0, 8.0] and result.num_windows == 7
    assert result.rows == [0, 2, 3, 4] and list(result.skipped_videos) == ["gone"]
    spans = [[moment[:2] for moment in moments] for moments in result.predictions]
    # red: [0,4] 0.8 > [0,8] 4/9 (IoU 0.5 with [0,4]: suppressed) > [2,6] 0.4 > the rest 0, in time order
    assert spans[0] == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 12)]
    # blue: [4,8] 0.8 > [2,6] 0.6 > [4,12] 0.5 (suppressed) > [0,8] 4/9 (suppressed) > [6,10] 0.4 > [0,4] 0.2 > [8,12]
    assert spans[1] == [(4, 8), (2, 6), (6, 10), (0, 4), (8, 12)]
    np.testing.assert_allclose([moment[2] for moment in result.predictions[1]], [0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-6)
    # green: [8,12] 1.0 > [6,10] 0.6 > [4,12] (suppressed) > [4,8] 0.2 > [0,8] (suppressed) > [0,4], [2,6] 0
    assert spans[2] == [(8, 12), (6, 10), (4, 8), (0, 4), (2, 6)]
    # yellow is in no frame: every window scores 0, the earliest first
    assert spans[3] == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 12)]
    # green's annotation [7, 14] ends past the 12 s video: clipped to [7, 12]
    assert result.ground_truth == [(0, 4), (4, 8), (7, 12), (2, 6)] and result.durations == [12.0] * 4
    # top-1 IoU: red 1, blue 1, green [8,12] vs [7,12] 0.8, yellow [0,4] vs [2,6] 1/3; the top 5 hold every moment
    expected = {"R@1_IoU0.3": 100.0, "R@1_IoU0.5": 75.0, "R@1_IoU0.7": 75.0, "R@5_IoU0.3": 100.0,
                "R@5_IoU0.5": 100.0, "R@5_IoU0.7": 100.0, "mIoU": 100 * (1 + 1 + 0.8 + 1 / 3) / 4}
    # the whole video [0,12]: IoU 4/12, 4/12, 5/12, 4/12
    whole = {"R@1_IoU0.3": 100.0, "R@1_IoU0.5": 0.0, "R@1_IoU0.7": 0.0, "R@5_IoU0.3": 100.0, "R@5_IoU0.5": 0.0,
             "R@5_IoU0.7": 0.0, "mIoU": 100 * (17 / 12) / 4}
    random = moment_metrics(moment_baselines(result.ground_truth, result.durations, 5, seed=0)["random_window"],
                            result.ground_truth)
    assert result.metrics == pytest.approx({**expected, **{f"whole_video/{key}": value for key, value in whole.items()},
                                            **{f"random_window/{key}": value for key, value in random.items()}})

    # a looser NMS keeps blue's [4,12] (IoU 0.5 < 0.6) and [0,8]
    with pytest.warns(UserWarning, match="left out of the moment evaluation"):
        looser = evaluate_moments(model, processor, colour_moments(colour_video), MomentEvaluationOptions(
            windows="4,8", nms_iou=0.6, baselines=False, progress=False), on_bad_video="skip")
    assert [moment[:2] for moment in looser.predictions[1]] == [(4, 8), (2, 6), (4, 12), (0, 8), (6, 10)]
    assert not any("/" in key for key in looser.metrics)
    with pytest.raises(TypeError, match="unknown option 'nms_io' \\(did you mean 'nms_iou'\\?\\)"):
        evaluate_moments(model, processor, colour_moments(colour_video), nms_io=0.3)


def test_random_window_baseline_on_a_hand_checked_case():
    baselines = moment_baselines([(2.0, 6.0), (0.0, 10.0)], [8.0, 10.0], top_k=5, seed=3)
    assert baselines["whole_video"] == [[(0.0, 8.0)], [(0.0, 10.0)]]
    first, whole = baselines["random_window"]
    # 4 s windows placed in the 8 s video start in [0, 4]: each overlaps [2, 6] with IoU >= 2/6
    assert len(first) == 5 and all(0 <= start <= 4 and end - start == pytest.approx(4) for start, end in first)
    assert moment_metrics([first], [(2.0, 6.0)], recall_at=(1,), iou_thresholds=(0.33,))["R@1_IoU0.33"] == 100.0
    assert len({start for start, _ in first}) == 5  # random places
    assert whole == [(0.0, 10.0)] * 5  # a moment as long as the video has one place
    assert moment_baselines([(2.0, 6.0)], [8.0], 5, seed=3)["random_window"][0] == first  # seeded


# ------------------------------------------------------------------------------------------------- the journey
def tvr(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_eval_moments_then_card_as_typed(tmp_path):
    from huggingface_hub import ModelCard

    from model_testers import RetrievalModelTester
    from tvr.cli import main

    data = tmp_path / "long"
    make_moment_dataset(data, 2, size=32, fps=2, num_events=3, event_seconds=(2, 4), progress=False)
    tokenizer = word_tokenizer(tmp_path / "tokenizer")
    processor = TVRProcessor(TVRVideoProcessor(size=16, crop_size=16, max_frames=4), tokenizer, max_words=16)
    text_config = {"vocab_size": len(tokenizer), "max_position_embeddings": 16,
                   "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    model = RetrievalModelTester(text_config=text_config, sim_header="meanP", max_words=16).model()
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)

    run = tvr("eval", model_dir, "--task", "moments", "--dataset", "jsonl", "--annotations", data / "test.jsonl",
              "--windows", "2,4", "--output", tmp_path / "moments.json")
    assert run.returncode == 0, run.stderr
    results = json.loads((tmp_path / "moments.json").read_text())
    records = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines()]
    assert {key: results[key] for key in ("task", "dataset", "split", "windows", "stride", "nms_iou", "num_texts",
                                          "num_videos", "num_skipped_videos")} == dict(
        task="moments", dataset="long/test.jsonl", split="test", windows=[2.0, 4.0], stride=0.5, nms_iou=0.5,
        num_texts=6, num_videos=2, num_skipped_videos=0)
    # the whole-video baseline from the generator's own bounds: IoU = moment length / video length
    assert results["whole_video/mIoU"] == pytest.approx(
        100 * np.mean([(r["end"] - r["start"]) / r["duration"] for r in records]))
    # the same numbers as evaluate_moments in this process on the saved model
    expected = evaluate_moments(model, processor, load_moments("jsonl", data / "test.jsonl"), windows="2,4",
                                progress=False).metrics
    assert {key: results[key] for key in expected} == pytest.approx(expected)

    # the same moments as a Charades-STA file: the same numbers
    (tmp_path / "charades").mkdir()
    (tmp_path / "charades" / "charades_sta_test.txt").write_text("".join(
        f"{r['video_id']} {r['start']} {r['end']}##{r['caption']}\n" for r in records))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every video found
        assert main(["eval", str(model_dir), "--task", "moments", "--dataset", "charades-sta", "--annotations",
                     str(tmp_path / "charades"), "--videos", str(data / "videos"), "--windows", "2,4", "--output",
                     str(tmp_path / "charades.json")]) == 0
    charades = json.loads((tmp_path / "charades.json").read_text())
    assert charades["dataset"] == "charades-sta" and {key: charades[key] for key in expected} == pytest.approx(expected)

    # DiDeMo's annotations on the same videos: each row's moment from its annotators' 5-s chunks
    duration = {r["video_id"]: r["duration"] for r in records}
    items = [{"video": f"{video}.mp4", "description": "a red square moves left", "times": [[0, 0], [1, 1], [0, 0]]}
             for video in duration] + [{"video": f"{video}.mp4", "description": "a blue circle", "times": [[1, 1]]}
                                       for video in duration]
    (tmp_path / "didemo").mkdir()
    (tmp_path / "didemo" / "test_data.json").write_text(json.dumps(items))
    assert main(["eval", str(model_dir), "--task", "moments", "--dataset", "didemo", "--annotations",
                 str(tmp_path / "didemo"), "--videos", str(data / "videos"), "--output",
                 str(tmp_path / "didemo.json")]) == 0
    didemo = json.loads((tmp_path / "didemo.json").read_text())
    assert (didemo["dataset"], didemo["windows"], didemo["stride"], didemo["num_texts"]) == (
        "didemo", [5.0, 10.0, 15.0, 20.0, 25.0, 30.0], 1.0, 4)
    # moments [0, 5] and [5, 10] (clipped to the video's end): the whole video overlaps each by its share of it
    assert didemo["whole_video/mIoU"] == pytest.approx(100 * np.mean(
        [5 / d for d in duration.values()] + [(min(10, d) - 5) / d for d in duration.values()]))

    assert main(["card", str(model_dir), "--eval-results", str(tmp_path / "moments.json"),
                 str(tmp_path / "charades.json")]) == 0
    card = ModelCard.load(model_dir / "README.md")
    entries = {(entry.task_type, entry.dataset_name, entry.dataset_split, entry.metric_name): entry.metric_value
               for entry in card.data.eval_results}
    for dataset, values in (("long/test.jsonl", results), ("Charades-STA", charades)):
        assert entries[("moment-retrieval", dataset, "test", "R@1 IoU=0.5")] == round(values["R@1_IoU0.5"], 2)
        assert entries[("moment-retrieval", dataset, "test", "mIoU")] == round(values["mIoU"], 2)
    assert len(entries) == 2 * 7  # R@1 / R@5 at 3 IoUs + mIoU per dataset; the baselines stay out
    assert card.data.eval_results[0].task_name == "Moment Retrieval"
    text = card.text
    assert "| Charades-STA | test | window search | 2,4 |" in text
    assert f"| Charades-STA | test | whole video |  | {charades['whole_video/R@1_IoU0.3']:.1f} |" in text


def test_task_options_belong_to_their_task(tmp_path, capsys):
    from tvr.cli import console_main

    assert console_main(["eval", str(tmp_path), "--task", "moments", "--dataset", "msrvtt", "--annotations",
                         str(tmp_path)]) == 1
    assert "--dataset msrvtt is not a moments dataset" in capsys.readouterr().err
    assert console_main(["eval", str(tmp_path), "--dataset", "jsonl", "--annotations", str(tmp_path),
                         "--windows", "4,8"]) == 1
    assert "--windows does not apply to --task retrieval" in capsys.readouterr().err
    assert console_main(["eval", str(tmp_path), "--task", "moments", "--dataset", "jsonl", "--annotations",
                         str(tmp_path), "--dsl"]) == 1
    assert "--dsl does not apply to --task moments" in capsys.readouterr().err
