"""One policy for videos that cannot be decoded: try the other decoder, then skip, count and list them in train,
eval and index (or stop with ``on_bad_video="error"``)."""

import json
from fractions import Fraction

import datasets
import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState

from test_evaluation_harness import make_tiny_clip4clip
from test_training import base_config, processor, tiny_model, videos  # noqa: F401  (fixtures)
from tvr.cli import main
from tvr.evaluation.harness import evaluate_retrieval
from tvr.retrieval import VideoIndex
from tvr.training import read_metrics, train
from tvr.training.data import CachedVideoProcessor, CaptionVideoSamples, TrainingCollator


def write_mp4(path, num_frames: int, fps: int = 4, size: int = 32, faststart: bool = False) -> str:
    """An H.264 mp4 of frames whose grey level encodes their index; ``faststart`` puts the moov atom first."""
    import av

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            frame = np.full((size, size, 3), index * 6, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def bad_videos(folder) -> list[str]:
    """Two files no decoder can read: junk bytes and an empty file."""
    junk, empty = folder / "junk.mp4", folder / "empty.mp4"
    junk.write_bytes(b"not a video" * 100)
    empty.write_bytes(b"")
    return [str(junk), str(empty)]


def test_a_cut_moov_first_mp4_refused_by_decord_is_decoded_with_pyav(tmp_path):
    from tvr import TVRVideoProcessor
    from tvr.processing.decoding import open_video, read_frames

    full = write_mp4(tmp_path / "full.mp4", 40, faststart=True)  # 10 s at 4 fps
    data = open(full, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[:int(len(data) * 0.9)])
    reader = open_video(tmp_path / "cut.mp4")
    with pytest.raises(ValueError):  # decord announces the frames but cannot decode them
        read_frames(reader, np.arange(len(reader)), "cut.mp4")

    processor = TVRVideoProcessor(size=16, crop_size=16, max_frames=40, fps=4)  # every frame
    cut = processor([str(tmp_path / "cut.mp4")], return_metadata=True, return_tensors="pt")
    metadata = cut["video_metadata"][0]
    assert metadata.video_backend == "pyav"
    decodable = metadata.total_num_frames  # the frames before the cut
    assert 20 < decodable < 40
    assert metadata.frames_indices == list(range(decodable))
    assert int(cut["video_mask"].sum()) == decodable
    # identical to the same frames of the intact file
    whole = processor([full], return_tensors="pt")
    torch.testing.assert_close(cut["pixel_values_videos"][:, :decodable], whole["pixel_values_videos"][:, :decodable])


# ------------------------------------------------------------------------------------------------ eval


def test_eval_skips_bad_videos_and_reports_them(tmp_path):
    model, processor_, dataset = make_tiny_clip4clip(tmp_path)
    bad = bad_videos(tmp_path / "data")
    rows = dataset.to_list()
    mixed = datasets.Dataset.from_list(rows[:2] + [{**rows[0], "video_id": "junk", "video_path": bad[0]}]
                                       + rows[2:] + [{**rows[1], "video_id": "empty", "video_path": bad[1]}])
    with pytest.warns(UserWarning, match="2 of 7 videos could not be decoded"):
        result = evaluate_retrieval(model, processor_, mixed, batch_size=2, progress=False, return_similarity=True)
    clean = evaluate_retrieval(model, processor_, dataset, batch_size=2, progress=False, return_similarity=True)
    assert sorted(result.skipped_videos) == sorted(bad)
    assert "not a video file" in result.skipped_videos[bad[0]]
    assert result.video_ids == clean.video_ids and result.metrics == clean.metrics
    torch.testing.assert_close(result.similarity, clean.similarity)

    with pytest.raises(ValueError, match="junk.mp4"):
        evaluate_retrieval(model, processor_, mixed, batch_size=2, progress=False, on_bad_video="error")

    # tvr eval: the results say how many videos were scored and which were skipped
    model.save_pretrained(tmp_path / "model")
    processor_.save_pretrained(tmp_path / "model")
    with open(tmp_path / "data" / "test.jsonl", "a") as annotations:
        for path in bad:
            annotations.write(json.dumps({"video_path": path, "caption": "a broken video"}) + "\n")
    output = tmp_path / "eval_results.json"
    args = ["eval", str(tmp_path / "model"), "--dataset", "jsonl", "--annotations", str(tmp_path / "data"),
            "--batch-size", "2", "--device", "cpu", "--output", str(output)]
    with pytest.warns(UserWarning, match="2 of 7 videos"):
        assert main(args) == 0
    results = json.loads(output.read_text())
    assert (results["num_texts"], results["num_videos"], results["num_skipped_videos"]) == (5, 5, 2)
    assert sorted(results["skipped_videos"]) == sorted(bad)
    assert {key: results[key] for key in clean.metrics} == pytest.approx(clean.metrics)
    with pytest.raises(ValueError, match="junk.mp4"):
        main(args + ["--on-bad-video", "error"])


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def test_collator_leaves_bad_videos_out_of_the_batch(tmp_path, videos, processor):
    train_set, _ = videos
    bad = bad_videos(tmp_path)
    rows = train_set.to_list()[:2]
    dataset = datasets.Dataset.from_list([rows[0], {**rows[0], "video_path": bad[0], "caption": "junk"}, rows[1]])
    samples = CaptionVideoSamples(dataset)
    for data_processor in (processor, CachedVideoProcessor(processor)):
        batch = TrainingCollator(data_processor)([samples[i] for i in range(3)])
        expected = processor(text=[rows[0]["caption"], rows[1]["caption"]],
                             videos=[rows[0]["video_path"], rows[1]["video_path"]], do_rescale=False,
                             do_normalize=False, return_tensors="pt")
        assert list(batch["skipped_videos"]) == [bad[0]]
        for name in ("input_ids", "pixel_values_videos", "video_mask"):
            assert torch.equal(batch[name], expected[name]), name
        with pytest.raises(ValueError, match="junk.mp4"):
            TrainingCollator(data_processor, on_bad_video="error")([samples[i] for i in range(3)])


@pytest.mark.parametrize("cache_videos", [False, True])
def test_training_with_bad_videos_completes_and_lists_them(tmp_path, videos, processor, cache_videos):
    train_set, _ = videos
    bad = bad_videos(tmp_path)
    rows = train_set.to_list()
    mixed = datasets.Dataset.from_list(rows[:3] + [{**rows[0], "video_path": bad[0]}] + rows[3:]
                                       + [{**rows[1], "video_path": bad[1]}])  # 10 rows: 2 batches of 4 per epoch
    model = tiny_model(processor)
    encode_video, fed = model.encode_video, []

    def recording_encode_video(pixel_values_videos, video_mask):
        fed.append(len(pixel_values_videos))
        return encode_video(pixel_values_videos, video_mask)

    model.encode_video = recording_encode_video
    with pytest.warns(UserWarning, match="2 of 10 videos could not be decoded and were left out of training"):
        output = train(base_config(tmp_path, "run", epochs=2, cache_videos=cache_videos), model=model,
                       processor=processor, train_dataset=mixed)
    skipped = json.loads((output / "skipped_videos.json").read_text())
    assert sorted(skipped) == sorted(bad)
    assert read_metrics(output)[-1]["skipped_videos"] == 2
    assert len(fed) == 4 and all(size <= 4 for size in fed) and sum(fed) < 16  # bad samples were never fed
    assert (output / "final" / "model.safetensors").is_file()

    AcceleratorState._reset_state(reset_partial_state=True)
    with pytest.raises(ValueError, match="on_bad_video|junk.mp4|empty.mp4"):
        train(base_config(tmp_path, "strict", epochs=1, cache_videos=cache_videos, on_bad_video="error"),
              model=tiny_model(processor), processor=processor, train_dataset=mixed)


def test_videos_missing_on_disk_follow_the_bad_video_policy_in_train_and_eval(tmp_path, videos, processor, capsys):
    """`tvr train` and `tvr eval` on annotations naming a file that is not there: left out and listed (count and
    names) like an undecodable video, not a refused run; `--on-bad-video error` stops, naming them."""
    train_set, _ = videos
    model_dir = tmp_path / "model"
    tiny_model(processor).save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    rows = [{key: row[key] for key in ("video_id", "video_path", "caption")} for row in train_set.to_list()]
    rows += [{"video_id": "gone", "video_path": str(tmp_path / "gone.mp4"), "caption": "a deleted video"}]
    annotations = tmp_path / "train.jsonl"
    annotations.write_text("".join(json.dumps(row) + "\n" for row in rows))

    train_args = ["train", "--init-from", str(model_dir), "--train-data", "name=generic",
                  f"annotation_dir={annotations}", "split=train", "--batch-size", "4", "--epochs", "1"]
    with pytest.warns(UserWarning, match="1 of 9 videos"):
        assert main([*train_args, "--output-dir", str(tmp_path / "run")]) == 0
    skipped = json.loads((tmp_path / "run" / "skipped_videos.json").read_text())
    assert list(skipped) == ["gone"] and "no video file on disk" in skipped["gone"]
    out = capsys.readouterr().out
    assert "1 training videos were left out, missing or undecodable" in out and "skipped: gone: " in out
    assert read_metrics(tmp_path / "run")[-1]["skipped_videos"] == 1
    AcceleratorState._reset_state(reset_partial_state=True)
    with pytest.raises(FileNotFoundError, match=r"training data: 1 videos have no file on disk \(gone\)"):
        main([*train_args, "--output-dir", str(tmp_path / "strict"), "--on-bad-video", "error"])

    output = tmp_path / "eval_results.json"
    eval_args = ["eval", str(model_dir), "--dataset", "jsonl", "--annotations", str(annotations), "--split",
                 "train", "--device", "cpu", "--output", str(output)]
    with pytest.warns(UserWarning, match="1 of 9 videos"):
        assert main(eval_args) == 0
    results = json.loads(output.read_text())
    assert (results["num_texts"], results["num_videos"], results["num_skipped_videos"]) == (8, 8, 1)
    assert list(results["skipped_videos"]) == ["gone"]
    with pytest.raises(FileNotFoundError, match=r"evaluation dataset: 1 videos have no file on disk \(gone\)"):
        main([*eval_args, "--on-bad-video", "error"])


# ------------------------------------------------------------------------------------------------ index


def test_index_lists_bad_videos_or_stops_on_them(tmp_path):
    model, processor_, dataset = make_tiny_clip4clip(tmp_path)
    bad = bad_videos(tmp_path / "data" / "videos")
    with pytest.warns(UserWarning, match="2 of 7 videos could not be decoded and were not indexed"):
        index = VideoIndex.build(model, processor_, tmp_path / "data" / "videos", batch_size=3, progress=False)
    assert sorted(index.failed) == sorted(bad) and len(index) == 5
    with pytest.raises(ValueError, match="empty.mp4"):
        VideoIndex.build(model, processor_, tmp_path / "data" / "videos", progress=False, on_bad_video="error")



def test_commands_name_the_first_bad_videos_and_count_the_rest(capsys):
    from tvr.evaluation.cli import _print_results
    from tvr.processing.bad_videos import SHOWN_BAD_VIDEOS

    skipped = {f"clip{number}.mp4": "not a video file" for number in range(SHOWN_BAD_VIDEOS + 7)}
    assert _print_results(skipped, {"t2v_R@1": 12.5}) == 0  # what every `tvr eval` task prints
    lines = capsys.readouterr().out.splitlines()
    assert lines[:SHOWN_BAD_VIDEOS] == [f"  skipped: clip{number}.mp4: not a video file"
                                        for number in range(SHOWN_BAD_VIDEOS)]
    assert lines[SHOWN_BAD_VIDEOS] == "... and 7 more (the --output FILE lists them all)"
    assert lines[SHOWN_BAD_VIDEOS + 1].split() == ["t2v_R@1", "12.50"] and len(lines) == SHOWN_BAD_VIDEOS + 2
    _print_results(dict(list(skipped.items())[:SHOWN_BAD_VIDEOS]), {})  # no more than shown: no count line
    assert len(capsys.readouterr().out.splitlines()) == SHOWN_BAD_VIDEOS
