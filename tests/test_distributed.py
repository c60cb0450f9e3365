"""Two gloo processes on CPU (``accelerate.debug_launcher``) against one process on the whole batch."""

import copy

import pytest
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs, debug_launcher
from accelerate.state import AcceleratorState

from model_testers import RetrievalModelTester
from tvr import CLIP4ClipModel, TVRVideoProcessor
from tvr.training.trainer import ContrastiveStep

BATCH, FRAMES, WORDS = 4, 3, 6


def tiny_model(sim_header: str) -> CLIP4ClipModel:
    tester = RetrievalModelTester(
        text_config={"num_hidden_layers": 1, "max_position_embeddings": WORDS},
        vision_config={"num_hidden_layers": 1, "image_size": 32, "patch_size": 16},
        sim_header=sim_header, temporal_config={"num_hidden_layers": 1, "hidden_dropout_prob": 0.0},
    )
    return tester.model().train().double()  # float64: the comparison is then exact to rounding


def whole_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 48, (BATCH, WORDS), generator=generator)
    input_ids[:, -1] = 49  # end-of-text token, pooled by CLIP
    video_mask = torch.ones(BATCH, FRAMES, dtype=torch.long)
    video_mask[1, 2:] = 0  # a shorter video, so masking is exercised
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones(BATCH, WORDS, dtype=torch.long),
        "pixel_values_videos": torch.randn(BATCH, FRAMES, 3, 32, 32, generator=generator, dtype=torch.float64),
        "video_mask": video_mask,
    }


def batch_loss(model: CLIP4ClipModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reference: one process, no gathering, the loss of these pairs."""
    text = model.encode_text(batch["input_ids"], batch["attention_mask"])
    video = model.encode_video(batch["pixel_values_videos"], batch["video_mask"])
    return model.compute_loss(text, video).loss


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _gradient_worker(sim_header: str) -> None:
    AcceleratorState._reset_state(reset_partial_state=True)  # forked from pytest: forget the parent's state
    # tightTransf has a parameter without gradient (CLIP's logit_scale), hence find_unused_parameters
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    assert accelerator.num_processes == 2
    model = tiny_model(sim_header)
    reference = copy.deepcopy(model)
    batch = whole_batch()
    half = BATCH // 2
    local = {key: value[accelerator.process_index * half:(accelerator.process_index + 1) * half]
             for key, value in batch.items()}

    step = accelerator.prepare(ContrastiveStep(model, TVRVideoProcessor()))  # float frames: used as given
    loss = step(**local)
    accelerator.backward(loss)
    distributed = gradients(model)

    if sim_header == "tightTransf":
        # pair-scoring heads train on the local batch (as the original); DDP averages the two halves' gradients
        expected_loss = batch_loss(reference, local)
        for index in range(2):
            part = {key: value[index * half:(index + 1) * half] for key, value in batch.items()}
            (batch_loss(reference, part) / 2).backward()
    else:
        expected_loss = batch_loss(reference, batch)
        expected_loss.backward()
    expected = gradients(reference)

    torch.testing.assert_close(loss.detach(), expected_loss.detach(), rtol=1e-10, atol=0)
    assert distributed.keys() == expected.keys() and len(expected) > 10
    for name, grad in expected.items():
        assert grad.abs().max() > 0 or "bias" in name, f"{name}: zero reference gradient, test not informative"
        torch.testing.assert_close(distributed[name], grad, rtol=1e-7, atol=1e-12, msg=lambda m: f"{name}: {m}")
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("sim_header", ["seqTransf", "tightTransf"])
def test_two_processes_match_one_process_gradient(sim_header):
    """Global-batch loss (gathered with gradients): the gradient of one process on the concatenated batch."""
    debug_launcher(_gradient_worker, args=(sim_header,), num_processes=2)


# ------------------------------------------------------------------------------------------------ the whole loop


@pytest.fixture(scope="module")
def training_data(tmp_path_factory):
    from tvr import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
    from tvr.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    dataset = make_synthetic_dataset(root, 8, seed=1, split="train", size=32, fps=4, duration=4.0,
                                     num_events=(1, 2), progress=False)
    tokenizer = train_clip_tokenizer(list(dataset["caption"]), root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(TVRVideoProcessor(size=32, crop_size=32, max_frames=FRAMES), tokenizer,
                             max_words=WORDS)
    return dataset, processor


def _training_model(processor) -> CLIP4ClipModel:
    tokenizer = processor.tokenizer
    text = dict(vocab_size=len(tokenizer), num_hidden_layers=1, max_position_embeddings=WORDS,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    vision = dict(num_hidden_layers=1, image_size=32, patch_size=16)
    tester = RetrievalModelTester(text_config=text, vision_config=vision, sim_header="seqTransf", max_frames=12,
                                  max_words=32)
    return tester.model().train().double()


def _train_worker(config, processor, dataset) -> None:
    from tvr.training import train

    AcceleratorState._reset_state(reset_partial_state=True)
    train(config, model=_training_model(processor), processor=processor, train_dataset=dataset)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_two_process_training_run_equals_one_process_run(tmp_path, training_data):
    """`train` under two gloo processes (each with half of every batch) follows the one-process run: same losses,
    gradient norms and final weights (float64, so exact to rounding)."""
    from tvr.training import TrainingConfig, read_metrics

    dataset, processor = training_data
    configs = {
        processes: TrainingConfig(output_dir=str(tmp_path / f"{processes}proc"), batch_size=4, epochs=2,
                                  optimizer="bertadam", lr=1e-3, coef_lr=0.1, warmup_proportion=0.25,
                                  freeze_layer_num=0, train_frame_order="shuffle", cache_videos=True, seed=7)
        for processes in (1, 2)
    }
    AcceleratorState._reset_state(reset_partial_state=True)
    _train_worker(configs[1], processor, dataset)
    debug_launcher(_train_worker, args=(configs[2], processor, dataset), num_processes=2)

    one, two = (read_metrics(configs[n].output_dir) for n in (1, 2))
    assert [record["step"] for record in one] == [record["step"] for record in two] == [1, 2, 3, 4]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-9)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-9)
    weights = [CLIP4ClipModel.from_pretrained(tmp_path / f"{n}proc" / "final").state_dict() for n in (1, 2)]
    initial = _training_model(processor).state_dict()
    moved = 0
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-9, atol=1e-12)
        moved += not torch.equal(value, initial[name])
    assert moved > 20  # training changed the weights, so the comparison means something


def _interrupted_train_worker(config, processor, dataset) -> None:
    """``train`` that stops (an exception on every process) inside the RNG phase of its third checkpoint write."""
    from tvr.training import checkpointing

    calls = []

    def fail_third_checkpoint(phase: str) -> None:
        if phase == "rng":
            calls.append(phase)
            if len(calls) == 3:
                raise KeyboardInterrupt("injected")

    checkpointing.phase_hook = fail_third_checkpoint
    try:
        _train_worker(config, processor, dataset)
    except KeyboardInterrupt:
        pass
    finally:
        checkpointing.phase_hook = None
        AcceleratorState._reset_state(reset_partial_state=True)


def test_two_process_run_with_a_bad_video_resumes_on_its_trajectory(tmp_path, training_data):
    """Two processes, a bad video in the data (its batch is smaller on one process: both keep the smallest
    size), a checkpoint write interrupted on both: `resume_from="latest"` gives the uninterrupted losses."""
    import dataclasses

    import datasets

    from tvr.training import TrainingConfig, read_metrics

    dataset, processor = training_data
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    rows = dataset.to_list()
    mixed = datasets.Dataset.from_list(rows + [{**rows[0], "video_path": str(tmp_path / "junk.mp4")}])
    config = TrainingConfig(output_dir=str(tmp_path / "full"), batch_size=4, epochs=2, lr=1e-3, coef_lr=0.1,
                            warmup_proportion=0.25, freeze_layer_num=-1, seed=7, save_steps=1)
    interrupted = dataclasses.replace(config, output_dir=str(tmp_path / "interrupted"))
    debug_launcher(_train_worker, args=(config, processor, mixed), num_processes=2)
    debug_launcher(_interrupted_train_worker, args=(interrupted, processor, mixed), num_processes=2)
    assert [record["step"] for record in read_metrics(interrupted.output_dir)] == [1, 2, 3]
    resumed = dataclasses.replace(interrupted, resume_from="latest")
    debug_launcher(_train_worker, args=(resumed, processor, mixed), num_processes=2)

    full, again = (read_metrics(run.output_dir) for run in (config, resumed))
    assert [record["step"] for record in again] == [1, 2, 3, 4]
    assert [record["loss"] for record in again] == [record["loss"] for record in full]
    assert full[-1]["skipped_videos"] == again[-1]["skipped_videos"] == 1
