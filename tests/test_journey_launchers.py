"""Training as users start it: `tvr train`, `torchrun -m tvr.training` and `accelerate launch -m tvr.training` in
subprocesses, two gloo processes on the CPU, against one process on the same global batch."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from model_testers import RetrievalModelTester

MAX_FRAMES, MAX_WORDS = 3, 8


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """A tiny saved model + processor and 8 synthetic training videos; the flags of a 4-step run on them."""
    from tvr import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
    from tvr.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("launchers")
    dataset = make_synthetic_dataset(root / "data", 8, seed=0, split="train", size=32, fps=4, duration=2.0,
                                     num_events=(1, 1), progress=False)
    dataset.to_json(root / "train.jsonl")
    tokenizer = train_clip_tokenizer(list(dataset["caption"]) * 3, root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(TVRVideoProcessor(size=32, crop_size=32, max_frames=MAX_FRAMES), tokenizer,
                             max_words=MAX_WORDS)
    text = dict(vocab_size=len(tokenizer), num_hidden_layers=1, max_position_embeddings=MAX_WORDS,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    model = RetrievalModelTester(text_config=text, vision_config=dict(num_hidden_layers=1, image_size=32,
                                                                      patch_size=16),
                                 sim_header="seqTransf", max_frames=12, max_words=32).model()
    model.save_pretrained(root / "init")
    processor.save_pretrained(root / "init")
    flags = ["--init-from", str(root / "init"), "--train-data", "name=generic",
             f"annotation_dir={root / 'train.jsonl'}", "split=train", "--batch-size", "4", "--epochs", "2",
             "--seed", "3", "--lr", "1e-3", "--warmup-proportion", "0", "--freeze-layer-num", "-1"]
    return root, flags


def launcher_env(root) -> dict[str, str]:
    # HF_HOME: no `accelerate config` file of the machine's user changes what `accelerate launch` does
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(root / "hf_home")}


TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
# the README's command for N CPU processes (or N GPUs) on one machine; port 0: a free one
ACCELERATE = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--multi_gpu",
              "--num_processes", "2", "--main_process_port", "0"]


def run(command: list[str], root) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, env=launcher_env(root), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def step_losses(run_dir) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(record["step"], record["loss"]) for record in records]


@pytest.fixture(scope="module")
def one_process_run(run_inputs):
    """`tvr train` in one process: the reference of the launchers' runs."""
    root, flags = run_inputs
    result = run([sys.executable, "-m", "tvr", "train", *flags, "--output-dir", str(root / "one")], root)
    assert "training on 1 process (cpu)" in result.stdout
    return root / "one"


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate launch"])
def test_two_cpu_processes_from_the_launchers_train_one_job(run_inputs, one_process_run, launcher):
    """Each launcher's 2 processes are one gloo job: printed once, one final/, one metrics line per step, and the
    losses of one process on the same global batch."""
    root, flags = run_inputs
    name = launcher.split()[0]
    two = run([*(TORCHRUN if name == "torchrun" else ACCELERATE), "-m", "tvr.training", *flags,
               "--output-dir", str(root / name)], root)

    assert two.stdout.count("training on 2 processes (cpu, gloo)") == 1
    assert two.stdout.count("trained model: ") == 1
    assert "warning: the launch asked for" not in two.stderr
    reference, losses = step_losses(one_process_run), step_losses(root / name)
    assert [step for step, _ in losses] == [step for step, _ in reference] == [1, 2, 3, 4]
    assert len({loss for _, loss in reference}) == 4  # the steps differ, so equal losses mean something
    for (_, expected), (_, loss) in zip(reference, losses):
        assert loss == pytest.approx(expected, abs=1e-5)
    entries = sorted(path.name for path in (root / name).iterdir())
    assert entries == [".tvr-output.json", "checkpoints", "final", "metrics.jsonl", "training_config.yaml"]
    assert (root / name / "final" / "model.safetensors").is_file()


def test_accelerate_launch_cpu_with_several_processes_says_it_runs_one(run_inputs):
    """`accelerate launch --cpu --num_processes 2` starts one process (accelerate's single-process launcher): tvr
    says so and names the commands that start N CPU processes. (A missing annotation file then ends the run early.)"""
    root, flags = run_inputs
    command = [sys.executable, "-m", "accelerate.commands.accelerate_cli", "launch", "--cpu", "--num_processes", "2",
               "-m", "tvr.training", *flags[:3], f"annotation_dir={root / 'missing.jsonl'}", "split=train",
               "--output-dir", str(root / "cpu_flag")]
    result = subprocess.run(command, capture_output=True, text=True, env=launcher_env(root), timeout=300)
    assert "training on 1 process (cpu)" in result.stdout
    assert "tvr: warning: the launch asked for several processes but this run has 1" in result.stderr
    assert "torchrun --standalone --nproc-per-node N -m tvr.training" in result.stderr
    assert "accelerate launch --multi_gpu --num_processes N -m tvr.training" in result.stderr
    # the error of `tvr train`, one line, from `-m tvr.training` too (the only traceback is the launcher's own
    # report of a child's exit status)
    assert result.returncode != 0 and result.stderr.count("tvr: error: ") == 1
    assert not re.search(r'File ".*/tvr/', result.stderr)


def test_training_workers_exit_when_torchrun_is_killed(run_inputs):
    """`kill -9` of torchrun: its worker (in a session of its own) gets SIGTERM and exits, not an orphan."""
    import psutil

    root, flags = run_inputs
    run_dir = root / "killed"
    # one worker: nothing else ends it (two gloo workers also die when their collectives lose the launcher's store)
    launcher = subprocess.Popen([*TORCHRUN[:-1], "1", "-m", "tvr.training", *flags, "--epochs", "1000",
                                 "--output-dir", str(run_dir)], env=launcher_env(root),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "metrics.jsonl").read_text():
            assert time.time() < deadline and launcher.poll() is None, "training did not start"
            time.sleep(0.2)
        workers = [child for child in psutil.Process(launcher.pid).children(recursive=True)
                   if "tvr.training" in " ".join(child.cmdline())]
        assert len(workers) == 1
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
    gone, alive = psutil.wait_procs(workers, timeout=20)
    for worker in alive:
        worker.kill()
    assert not alive, f"{len(alive)} training workers outlived their killed launcher"
