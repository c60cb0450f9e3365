"""Fault injection: SIGKILL inside checkpoint and index writes, diverging runs, bad videos mixed into training.

A killed process is a forked child that sends itself SIGKILL at a named phase of a write; the parent then resumes
(or reloads) and compares with an uninterrupted run.
"""

import json
import multiprocessing
import os
import shutil
import signal

import pytest
import torch
from accelerate.state import AcceleratorState
from test_training import base_config, losses, processor, tiny_model, videos  # noqa: F401  (fixtures)

from tvr import CLIP4ClipModel
from tvr.training import checkpointing, read_metrics, train
from tvr.training.checkpointing import list_checkpoints, resolve_checkpoint, verify_checkpoint
from tvr.training.trainer import TrainingDiverged

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
    return base_config(tmp_path, name, save_steps=1, save_total_limit=2, **overrides)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, videos, processor):  # noqa: F811
    AcceleratorState._reset_state(reset_partial_state=True)
    output = train(checkpoint_config(tmp_path_factory.mktemp("full"), "full"), model=tiny_model(processor),
                   processor=processor, train_dataset=videos[0])
    AcceleratorState._reset_state(reset_partial_state=True)
    return losses(output), CLIP4ClipModel.from_pretrained(output / "final").state_dict()


@pytest.mark.parametrize("phase", CHECKPOINT_PHASES)
def test_sigkill_inside_a_checkpoint_write_resumes_on_the_same_trajectory(tmp_path, videos, processor, phase,  # noqa: F811
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
    resumed = train(config, model=tiny_model(processor), processor=processor, train_dataset=videos[0])
    resumed_losses = losses(resumed)
    assert sorted(resumed_losses) == [1, 2, 3, 4, 5, 6]
    for step, loss in reference_losses.items():
        assert resumed_losses[step] == loss, step  # bit-identical, not merely close
    for name, value in CLIP4ClipModel.from_pretrained(resumed / "final").state_dict().items():
        assert torch.equal(value, reference_weights[name]), name
    assert [path.name for path in list_checkpoints(config.output_dir)] == ["checkpoint-5", "checkpoint-6"]
    assert not [name for name in os.listdir(os.path.join(config.output_dir, "checkpoints")) if name.startswith(".")]


def test_latest_skips_an_incomplete_checkpoint_and_resume_refuses_foreign_files(tmp_path, videos, processor):  # noqa: F811
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
    (foreign / "custom_checkpoint_0.pkl").write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    with pytest.raises(ValueError, match="custom_checkpoint_0.pkl.*never unpickles"):
        verify_checkpoint(foreign)
    accelerate_format = tmp_path / "accelerate_format"
    accelerate_format.mkdir()
    (accelerate_format / "random_states_0.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match="not a complete tvr checkpoint"):
        resolve_checkpoint(str(accelerate_format), config.output_dir)
    assert not os.path.exists("pwned")


def test_missing_rng_state_is_warned_about(tmp_path, videos, processor):  # noqa: F811
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


def test_a_diverging_run_stops_with_a_clear_error_and_saves_no_nan_weights(tmp_path, videos, processor):  # noqa: F811
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


def test_a_nan_batch_is_skipped_and_counted(tmp_path, videos, processor):  # noqa: F811
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
