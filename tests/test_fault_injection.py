"""Fault injection: SIGKILL inside checkpoint and index writes, diverging runs, bad videos mixed into training.

A killed process is a forked child that sends itself SIGKILL at a named phase of a write; the parent then resumes
(or reloads) and compares with an uninterrupted run.
"""

import functools
import json
import multiprocessing
import os
import shutil
import signal

import pytest
import torch
from accelerate.state import AcceleratorState

from test_retrieval import corpus  # noqa: F401  (fixture)
from test_retrieval import tiny_model as tiny_retrieval_model
from test_training import base_config, cli_run, error_lines, losses, processor, tiny_model, videos  # noqa: F401
from tvr import CLIP4ClipModel
from tvr.retrieval import VideoIndex, list_video_files
from tvr.training import checkpointing, train
from tvr.training.checkpointing import list_checkpoints, resolve_checkpoint, verify_checkpoint
from tvr.training.trainer import TrainingDiverged
from tvr.utils.output_dir import write_marker

CHECKPOINT_PHASES = ("model", "optimizer", "scheduler", "rng", "progress", "manifest", "commit", "rotate")


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    checkpointing.phase_hook = None


def run_killed(target, timeout: float = 120) -> None:
    """Run ``target`` in a forked child and check that it died of SIGKILL (the fault it injects)."""
    def child():
        try:
            target()
        finally:
            os._exit(0)  # reached only if the fault was never injected

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout)
    assert process.exitcode == -signal.SIGKILL, f"child exit code {process.exitcode}: the kill was not reached"


def kill_at(phase: str, occurrence: int):
    """A checkpoint phase hook that SIGKILLs the process the ``occurrence``-th time ``phase`` ends."""
    seen = []

    def hook(name: str) -> None:
        if name == phase:
            seen.append(name)
            if len(seen) == occurrence:
                os.kill(os.getpid(), signal.SIGKILL)
    return hook


def checkpoint_config(tmp_path, name, **overrides):
    # 3 epochs x 2 batches = 6 steps, a checkpoint after every step (odd steps are mid-epoch), the newest 2 kept
    return base_config(tmp_path, name, **{"save_steps": 1, "save_total_limit": 2, **overrides})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, videos, processor):
    AcceleratorState._reset_state(reset_partial_state=True)
    output = train(checkpoint_config(tmp_path_factory.mktemp("full"), "full"), model=tiny_model(processor),
                   processor=processor, train_dataset=videos[0])
    AcceleratorState._reset_state(reset_partial_state=True)
    return losses(output), CLIP4ClipModel.from_pretrained(output / "final").state_dict()


@pytest.mark.parametrize("phase", CHECKPOINT_PHASES)
def test_sigkill_inside_a_checkpoint_write_resumes_on_the_same_trajectory(tmp_path, videos, processor, phase,
                                                                         uninterrupted):
    reference_losses, reference_weights = uninterrupted
    assert sorted(reference_losses) == [1, 2, 3, 4, 5, 6]
    config = checkpoint_config(tmp_path, "killed")

    def killed_run():
        checkpointing.phase_hook = kill_at(phase, occurrence=3)  # inside the write of checkpoint-3
        train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])

    run_killed(killed_run)
    committed = phase in ("commit", "rotate")
    latest = resolve_checkpoint("latest", config.output_dir)
    assert latest.name == ("checkpoint-3" if committed else "checkpoint-2")
    assert verify_checkpoint(latest)["step"] == int(latest.name.split("-")[1])
    # a kill while appending a line tears the log: the resume must not stop on it
    with open(os.path.join(config.output_dir, "metrics.jsonl"), "a") as log:
        log.write('{"step": 4, "lo')

    config.resume_from = "latest"
    with pytest.warns(UserWarning, match="dropping the torn last line"):
        resumed = train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])
    resumed_losses = losses(resumed)
    assert sorted(resumed_losses) == [1, 2, 3, 4, 5, 6]
    for step, loss in reference_losses.items():
        assert resumed_losses[step] == loss, step  # bit-identical, not merely close
    for name, value in CLIP4ClipModel.from_pretrained(resumed / "final").state_dict().items():
        assert torch.equal(value, reference_weights[name]), name
    assert [path.name for path in list_checkpoints(config.output_dir)] == ["checkpoint-5", "checkpoint-6"]
    assert not [name for name in os.listdir(os.path.join(config.output_dir, "checkpoints")) if name.startswith(".")]


def test_latest_skips_an_incomplete_checkpoint_and_resume_refuses_foreign_files(tmp_path, videos, processor):
    config = checkpoint_config(tmp_path, "run", epochs=1)
    train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])
    first, second = list_checkpoints(config.output_dir)
    # a folder renamed into place by hand, or cut short by a copy: no manifest -> skipped by "latest"
    (second / checkpointing.MANIFEST_FILE).unlink()
    with pytest.warns(UserWarning, match="checkpoint-2.*not a complete tvr checkpoint"):
        assert resolve_checkpoint("latest", config.output_dir) == first
    # a file changed after saving
    with open(first / checkpointing.OPTIMIZER_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=r"optimizer.pt has \d+ bytes, \d+ were written"):
        resolve_checkpoint(str(first), config.output_dir)

    # accelerate's pickles (or anyone's) are never loaded: a folder holding them is refused before anything is read
    foreign = tmp_path / "foreign"
    shutil.copytree(list_checkpoints(config.output_dir)[0], foreign)
    with open(foreign / checkpointing.OPTIMIZER_FILE, "rb+") as handle:
        handle.truncate(handle.seek(0, 2) - 1)  # undo the byte added above
    verify_checkpoint(foreign)
    # a checkpoint of tvr before content hashes (manifest format 1: sizes only) still resumes
    manifest = json.loads((foreign / checkpointing.MANIFEST_FILE).read_text())
    assert set(manifest["files"]["model.safetensors"]) == {"size", "hash"}
    manifest["files"] = {name: written["size"] for name, written in manifest["files"].items()}
    (foreign / checkpointing.MANIFEST_FILE).write_text(json.dumps({**manifest, "version": 1}))
    assert verify_checkpoint(foreign)["version"] == 1
    (foreign / "custom_checkpoint_0.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(ValueError, match="custom_checkpoint_0.pkl.*never unpickles"):
        verify_checkpoint(foreign)
    accelerate_format = tmp_path / "accelerate_format"
    accelerate_format.mkdir()
    (accelerate_format / "random_states_0.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match="not a complete tvr checkpoint"):
        resolve_checkpoint(str(accelerate_format), config.output_dir)
    assert not os.path.exists("pwned")


def test_missing_rng_state_is_warned_about(tmp_path, videos, processor):
    config = checkpoint_config(tmp_path, "run", epochs=1)
    train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])
    checkpoint = list_checkpoints(config.output_dir)[0]
    manifest = json.loads((checkpoint / checkpointing.MANIFEST_FILE).read_text())
    for name in ("rng_state_0.json", "rng_state_0.safetensors"):
        (checkpoint / name).unlink()
        del manifest["files"][name]
    (checkpoint / checkpointing.MANIFEST_FILE).write_text(json.dumps(manifest))
    AcceleratorState._reset_state(reset_partial_state=True)
    config.resume_from, config.epochs = str(checkpoint), 2
    with pytest.warns(UserWarning, match="no RNG state for process 0.*will NOT follow the uninterrupted run"):
        train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])


# ------------------------------------------------------------------------------------------------ non-finite


def strict_json_lines(path) -> list[dict]:
    def refuse(constant):
        raise ValueError(f"bare {constant} in {path}")
    with open(path) as handle:
        return [json.loads(line, parse_constant=refuse) for line in handle]


def test_a_diverging_run_stops_with_a_clear_error_and_saves_no_nan_weights(tmp_path, videos, processor):
    config = base_config(tmp_path, "diverged", lr=1e4, coef_lr=1.0, max_grad_norm=None, warmup_proportion=0.0,
                         epochs=10, max_nonfinite_steps=2, save_steps=1, save_total_limit=None)
    with pytest.raises(TrainingDiverged, match=r"NaN/inf for 2 steps in a row .*Lower lr \(now 10000.0\)"):
        train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])
    output = tmp_path / "diverged"
    assert not (output / "final").exists() and not (output / "best").exists()
    records = strict_json_lines(output / "metrics.jsonl")
    assert records[-1]["loss"] is None or records[-1]["grad_norm"] is None  # NaN is written as null
    assert records[-1]["nonfinite_steps"] == 2
    assert all(record.get("nonfinite_steps") is None for record in records[:-2])
    checkpoints = list_checkpoints(output)
    assert checkpoints  # saved before the divergence ...
    for checkpoint in checkpoints:  # ... and every one of them finite
        from safetensors.torch import load_file

        for name, value in load_file(checkpoint / "model.safetensors").items():
            assert torch.isfinite(value).all(), (checkpoint.name, name)
    assert int(checkpoints[-1].name.split("-")[1]) < records[-1]["step"]  # none at or after the stop


def test_tvr_train_reports_a_divergence_in_one_line(tmp_path, cli_run, capsys):
    from tvr.cli import console_main

    flags = [*cli_run, "--output-dir", str(tmp_path / "run"), "--lr", "1e4", "--coef-lr", "1", "--max-grad-norm",
             "none", "--warmup-proportion", "0", "--epochs", "10", "--max-nonfinite-steps", "2"]
    assert console_main(flags) == 1
    captured = capsys.readouterr()
    [error] = error_lines(captured.err)
    assert error.startswith("tvr: error: training diverged: the loss or gradient norm was NaN/inf for 2 steps in a "
                            "row") and "Lower lr (now 10000.0)" in error
    assert "Traceback" not in captured.err and "trained model" not in captured.out


def test_a_nan_batch_is_skipped_and_counted(tmp_path, videos, processor):
    model = tiny_model(processor)
    encode_video, calls = model.encode_video, []

    def one_nan_pixel(pixel_values_videos, video_mask):
        calls.append(1)
        if len(calls) == 2:  # the second batch has a NaN pixel: every gradient of that step is NaN
            pixel_values_videos = pixel_values_videos.clone()
            pixel_values_videos[0, 0, 0, 0, 0] = float("nan")
        return encode_video(pixel_values_videos, video_mask)

    model.encode_video = one_nan_pixel
    snapshots = []
    original_step = torch.optim.AdamW.step

    def recording_step(self, *args, **kwargs):
        snapshots.append(len(calls))
        return original_step(self, *args, **kwargs)

    torch.optim.AdamW.step = recording_step
    try:
        output = train(base_config(tmp_path, "nan", epochs=2), model=model, processor=processor,
                       train_dataset=videos[0])
    finally:
        torch.optim.AdamW.step = original_step
    assert snapshots == [1, 3, 4]  # the optimiser never stepped on the NaN batch
    records = strict_json_lines(output / "metrics.jsonl")
    assert records[1]["step"] == 2 and records[1]["loss"] is None and records[1]["nonfinite_steps"] == 1
    assert [record["loss"] is not None for record in records if "loss" in record] == [True, False, True, True]
    for name, value in CLIP4ClipModel.from_pretrained(output / "final").state_dict().items():
        assert torch.isfinite(value).all(), name


# ------------------------------------------------------------------------------------------------ the index


def index_of(corpus_, paths, **kwargs):
    _, processor_, _ = corpus_
    return VideoIndex.build(tiny_retrieval_model(processor_, "meanP"), processor_, paths, batch_size=2,
                            progress=False, **kwargs)


def kill_after(module, name: str, occurrence: int = 1):
    """Replace ``module.name`` with a wrapper that SIGKILLs the process after its ``occurrence``-th call returns."""
    original, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == occurrence:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    setattr(module, name, wrapper)


SAVE_FAULTS = {  # phase of VideoIndex.save -> (module, function, occurrence) to die after
    "encodings": ("safetensors.torch", "save_file", 1),
    "faiss": ("faiss", "write_index", 1),
    "videos": ("tvr.retrieval.index", "_write_json", 1),
    "config": ("tvr.retrieval.index", "_write_json", 2),
    "fsync": ("tvr.utils.atomic", "fsync_tree", 1),
    "old_aside": ("os", "rename", 1),  # between the two renames: the old index is aside, the new one not in place
    "new_in_place": ("os", "rename", 2),
}


@pytest.mark.parametrize("phase", SAVE_FAULTS)
def test_sigkill_during_index_save_leaves_a_loadable_correct_index(tmp_path, corpus, phase):
    import importlib

    dataset, processor_, video_dir = corpus
    paths = list_video_files(video_dir)
    old, new = index_of(corpus, paths[:4]), index_of(corpus, paths)
    index_dir = tmp_path / "videos.index"
    old.save(index_dir)
    module, name, occurrence = SAVE_FAULTS[phase]

    def killed_save():
        kill_after(importlib.import_module(module), name, occurrence)
        new.save(index_dir)

    run_killed(killed_save)
    expected = new if phase == "new_in_place" else old
    loaded = VideoIndex.load(index_dir, model=expected.model, processor=processor_)
    assert loaded.paths == expected.paths
    torch.testing.assert_close(loaded.encoding.video_embeds, expected.encoding.video_embeds, rtol=0, atol=0)
    captions = list(dataset["caption"][:3])
    assert loaded.search(captions, top_k=3) == expected.search(captions, top_k=3)


def test_index_load_detects_files_that_disagree(tmp_path, corpus):
    paths = list_video_files(corpus[2])
    small, large = index_of(corpus, paths[:3]), index_of(corpus, paths)
    small.save(tmp_path / "small")
    large.save(tmp_path / "large")
    load = functools.partial(VideoIndex.load, model=small.model, processor=small.processor)
    # another index's FAISS file: 6 rows for 3 paths would return wrong videos
    shutil.copy(tmp_path / "large" / "index.faiss", tmp_path / "small" / "index.faiss")
    with pytest.raises(ValueError, match="index.faiss does not match the checksum"):
        load(tmp_path / "small")
    # consistent checksums but counts that disagree (a buggy writer): still refused
    config = json.loads((tmp_path / "large" / "index_config.json").read_text())
    videos_file = tmp_path / "large" / "videos.json"
    videos_file.write_text(json.dumps({"paths": paths[:5], "failed": {}}))
    from tvr.retrieval.index import _sha256

    config["files"]["videos.json"] = {"size": videos_file.stat().st_size, "sha256": _sha256(videos_file)}
    (tmp_path / "large" / "index_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"disagree on the number of videos .*'videos.json paths': 5"):
        load(tmp_path / "large")


def test_index_config_cannot_import_arbitrary_classes(tmp_path, corpus, monkeypatch):
    index = index_of(corpus, list_video_files(corpus[2])[:3])
    index.save(tmp_path / "index")
    (tmp_path / "evil_module_for_tvr_test.py").write_text("open('imported', 'w').close()\nclass Cls: pass\n")
    monkeypatch.syspath_prepend(tmp_path)
    monkeypatch.chdir(tmp_path)
    config_file = tmp_path / "index" / "index_config.json"
    config = json.loads(config_file.read_text())
    for name in ("evil_module_for_tvr_test.Cls", "os.system"):
        config["encoding_class"] = name
        config_file.write_text(json.dumps(config))
        with pytest.raises(ValueError, match=f"encoding_class '{name}' is not a tvr video encoding"):
            VideoIndex.load(tmp_path / "index", model=index.model, processor=index.processor)
    assert not (tmp_path / "imported").exists()


class CountingProcessor:
    """A processor that records the videos it is asked to decode."""

    def __init__(self, processor_):
        self.processor, self.videos = processor_, []

    def __call__(self, videos=None, **kwargs):
        self.videos += list(videos or [])
        return self.processor(videos=videos, **kwargs)

    def __getattr__(self, name):  # the wrapped processor's settings (video_processor: how its frames normalise)
        return getattr(self.processor, name)


def test_killed_indexing_resumes_without_redoing_finished_videos(tmp_path, corpus, capsys):
    from tvr.retrieval import shards as shards_module

    _, processor_, video_dir = corpus
    paths = list_video_files(video_dir)
    reference = index_of(corpus, paths)
    resume_dir = tmp_path / "videos.index.partial"

    def killed_build():
        kill_after(shards_module, "write_shard", occurrence=2)  # two shards of 2 done, then killed
        index_of(corpus, paths, resume_dir=resume_dir)

    run_killed(killed_build)
    counting = CountingProcessor(processor_)
    resumed = VideoIndex.build(tiny_retrieval_model(processor_, "meanP"), counting, paths, batch_size=2,
                               progress=False, resume_dir=resume_dir)
    assert counting.videos == paths[4:]  # the four finished videos were not decoded again
    assert resumed.paths == reference.paths
    torch.testing.assert_close(resumed.encoding.video_embeds, reference.encoding.video_embeds)
    # the shards belong to one model: another one starts over, saying so (issue 23 item 1)
    other = tiny_retrieval_model(processor_, "seqTransf")
    counting.videos = []
    VideoIndex.build(other, counting, paths, progress=False, resume_dir=resume_dir)
    assert counting.videos == paths
    assert "its shards were encoded by a model of another config: encoding all videos again" in capsys.readouterr().out


def test_rotation_keeps_the_newest_complete_checkpoints_and_leaves_foreign_folders(tmp_path, videos, processor):
    config = checkpoint_config(tmp_path, "run", epochs=1, save_total_limit=1)
    foreign = tmp_path / "run" / "checkpoints" / "checkpoint-0"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("not written by tvr")
    write_marker(tmp_path / "run", "training run")  # a run's folder, where someone put a folder of their own
    train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])
    assert [path.name for path in list_checkpoints(config.output_dir)] == ["checkpoint-0", "checkpoint-2"]
    assert (foreign / "notes.txt").read_text() == "not written by tvr"


# ------------------------------------------------------------------------------------------------ tvr.utils.atomic


def test_atomic_directory_cleans_up_after_killed_writers(tmp_path):
    from tvr.utils.atomic import atomic_directory, atomic_write_text, recover_directory

    final = tmp_path / "out"
    with atomic_directory(final) as staging:
        (staging / "a.txt").write_text("first")
    # what writers killed at various points leave: a staging folder of a dead process, one of a live process
    # (another writer, still at work), and a previous version set aside
    dead = multiprocessing.get_context("fork").Process(target=os._exit, args=(0,))
    dead.start()
    dead.join()
    (tmp_path / f".out.tmp-{dead.pid}-0000").mkdir()
    (tmp_path / f".out.tmp-{os.getpid()}-0000").mkdir()
    (tmp_path / ".out.old-1-0000").mkdir()
    with pytest.raises(RuntimeError):
        with atomic_directory(final) as staging:
            (staging / "a.txt").write_text("never committed")
            raise RuntimeError("a failing writer")
    assert (final / "a.txt").read_text() == "first"
    with atomic_directory(final) as staging:
        (staging / "a.txt").write_text("second")
    assert (final / "a.txt").read_text() == "second"
    assert sorted(path.name for path in tmp_path.iterdir()) == [f".out.tmp-{os.getpid()}-0000", "out"]

    # a writer between its two renames, alive: its new version comes at once, a reader leaves the old one aside
    os.rename(final, tmp_path / f".out.old-{os.getpid()}-0000")
    assert not recover_directory(final) and not final.exists()
    # a writer killed between the two renames: the old version is put back by the reader
    os.rename(tmp_path / f".out.old-{os.getpid()}-0000", tmp_path / f".out.old-{dead.pid}-0000")
    assert recover_directory(final) and (final / "a.txt").read_text() == "second"
    assert not recover_directory(final)  # nothing to do when the folder is there

    atomic_write_text(tmp_path / "note.txt", "x")
    atomic_write_text(tmp_path / "note.txt", "y")
    assert (tmp_path / "note.txt").read_text() == "y"
    assert not list(tmp_path.glob(".note.txt*"))
