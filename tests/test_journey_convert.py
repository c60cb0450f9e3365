"""The converter journey as a user types it: `tvr convert` in a subprocess, again into the same folder, into a folder
of their own, with a typo in --original-args, with another method's or a damaged checkpoint, then `tvr eval` on the
converted folder with a few synthetic videos."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURES
from stand_ins import word_tokenizer
from tvr.cli import console_main
from tvr.data.synthetic import make_synthetic_dataset
from tvr.utils.output_dir import MARKER

CHECKPOINT = FIXTURES / "clip4clip" / "meanP_2d" / "pytorch_model.bin"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def tvr(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=300)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line (progress bars share stderr, before it)."""
    assert result.returncode == 1, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("tvr: error: ") and "Traceback" not in result.stderr, result.stderr
    return line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("journey")
    word_tokenizer(folder / "tokenizer", 320)  # stands in for openai/clip-vit-base-patch32 (the fixture's 320 tokens)
    make_synthetic_dataset(folder / "data", 4, size=32, duration=2.0, num_events=1, progress=False)
    return folder


def test_convert_reconvert_refuse_then_eval(workspace):
    out = workspace / "clip4clip-msrvtt"
    convert = ["convert", "clip4clip", CHECKPOINT, out, "--tokenizer", workspace / "tokenizer", "--max-frames", "4"]
    first = tvr(*convert)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"wrote CLIP4Clip meanP/2d to {out}"
    files = ["config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "tokenizer_config.json"]
    assert json.loads((out / MARKER).read_text()) == {"kind": "model", "files": files}

    again = tvr(*convert[:-1], "6")  # the same folder: tvr's own, replaced whole
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "config.json").read_text())["max_frames"] == 6
    assert sorted(path.name for path in out.iterdir()) == sorted([MARKER, *files])
    assert not [path for path in workspace.iterdir() if ".tmp-" in path.name or ".old-" in path.name]

    project = workspace / "my-project"
    project.mkdir()
    (project / "notes.txt").write_text("my notes")
    refused = tvr(*convert[:3], project)
    assert "output folder" in error_line(refused) and "holds 'notes.txt'" in error_line(refused)
    assert [path.name for path in project.iterdir()] == ["notes.txt"] and (project / "notes.txt").read_text() == \
        "my notes"

    results = workspace / "results.json"
    evaluated = tvr("eval", out, "--dataset", "jsonl", "--annotations", workspace / "data" / "test.jsonl",
                    "--output", results)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(results.read_text())
    assert metrics["num_videos"] == 4 and 0 <= metrics["t2v_R@1"] <= 100


def test_typo_in_original_args_is_refused_with_the_suggestion(workspace):
    typo = tvr("convert", "emcl", FIXTURES / "emcl" / "tiny_w64_default_em" / "pytorch_model.bin",
               workspace / "emcl", "--original-args", "--max_frames 12 --centerk 16")
    assert "has no flag '--centerk' (did you mean '--centerK'?)" in error_line(typo)
    assert not (workspace / "emcl").exists()


def test_wrong_method_and_damaged_checkpoints_are_one_line_refusals(workspace, capsys):
    """The same `tvr` entry point in-process (a subprocess per refusal would cost seconds each)."""
    internvideo = FIXTURES / "internvideo" / "tiny_w32_f4_ret23" / "pytorch_model.bin"
    assert console_main(["convert", "clip4clip", str(internvideo), str(workspace / "wrong")]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "looks like an InternVideo (CLIP-EVL) checkpoint" in line
    assert "use tvr convert internvideo or tvr convert internvideo-zeroshot" in line

    damaged = workspace / "pytorch_model.bin.3"
    damaged.write_bytes(CHECKPOINT.read_bytes()[:50_000])  # a download cut short
    assert console_main(["convert", "clip4clip", str(damaged), str(workspace / "damaged")]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"tvr: error: checkpoint '{damaged}' could not be read") and "damaged" in line
    assert not (workspace / "wrong").exists() and not (workspace / "damaged").exists()
