"""Issue 18, a newcomer's first hour: every folder tvr writes is usable, configs and data choices are validated, one
CLI style. Each test goes through the real `tvr` entry point (`tvr.cli.main`), on the demo's reduced output and the
fixtures as stand-in checkpoints."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stand_ins import word_tokenizer
from tvr.cli import console_main, main

FIXTURES = Path(__file__).parent / "fixtures"
CLIP_FILE = FIXTURES / "clip4clip" / "clip_openai_state_dict.bin"  # a tiny OpenAI CLIP: 320-token vocabulary
CLIP4CLIP_FILE = FIXTURES / "clip4clip" / "meanP_2d" / "pytorch_model.bin"
DEMO_ARGS = ["--train-videos", "8", "--val-videos", "4", "--test-videos", "5", "--epochs", "1", "--batch-size", "4"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--output", str(output), *DEMO_ARGS]) == 0
    return output


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A tokenizer that fits the fixtures' 320-token text towers (stand-in for openai/clip-vit-base-patch32)."""
    folder = tmp_path_factory.mktemp("tokenizer")
    word_tokenizer(folder, 320)
    return folder


def last_line(text: str) -> str:
    """The error line (progress bars share stderr)."""
    return text.strip().splitlines()[-1]


def run(args, capsys):
    code = console_main([str(arg) for arg in args])  # the `tvr` command: user errors are one line
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------ 1. a tokenizer that does not fit is an error


def test_convert_clip_without_tokenizer_says_what_to_pass_and_training_on_it_fails(demo, tmp_path, capsys):
    clip_dir = tmp_path / "clip"
    code, out, err = run(["convert", "clip", CLIP_FILE, clip_dir], capsys)
    assert code == 0 and "without a tokenizer" in err and "--tokenizer" in err
    code, out, err = run(["train", "--from-clip", clip_dir, "--train-data", "name=generic",
                          f"annotation_dir={demo / 'data' / 'train.jsonl'}", "split=train", "--epochs", "1",
                          "--batch-size", "4", "--output-dir", tmp_path / "run"], capsys)
    # before: AutoTokenizer's 2-entry CLIPTokenizer turned every caption into [0, 2, 2, ...] and training ran at chance
    assert code == 1 and last_line(err).startswith("tvr: error:") and "has no vocabulary" in last_line(err)
    assert not (tmp_path / "run" / "final").exists()


def test_convert_clip_with_tokenizer_trains(demo, tokenizer_dir, tmp_path, capsys):
    clip_dir = tmp_path / "clip"
    code, _, err = run(["convert", "clip", CLIP_FILE, clip_dir, "--tokenizer", tokenizer_dir], capsys)
    assert code == 0 and "warning" not in err and (clip_dir / "tokenizer.json").is_file()
    code, out, err = run(["train", "--from-clip", clip_dir, "--train-data", "name=generic",
                          f"annotation_dir={demo / 'data' / 'train.jsonl'}", "split=train", "--eval-data",
                          "name=generic", f"annotation_dir={demo / 'data' / 'val.jsonl'}", "split=val",
                          "--epochs", "1", "--batch-size", "4", "--output-dir", tmp_path / "run"], capsys)
    assert code == 0, err
    assert "evaluation after epoch 1 (step 2): t2v_R@1" in out  # item 8: evaluation numbers on the console
    assert (tmp_path / "run" / "final" / "tokenizer.json").is_file()
    check_model_card(tmp_path / "run" / "best", "run", tmp_path)


def check_model_card(folder, name, tmp_path):
    """Item 6: a trained model's card is named after the run, licensed, says what it is for and how to use, re-run and
    publish it, and names the data."""
    import re

    import yaml
    from huggingface_hub import ModelCard

    from tvr.training import TrainingConfig

    card = ModelCard.load(folder / "README.md")
    assert card.data.model_name == name and card.text.lstrip().startswith(f"# {name}\n")
    assert str(tmp_path) not in card.text.split("## Training")[0]  # no machine path in title, usage, details
    assert card.data.license == "apache-2.0" and card.data.pipeline_tag  # pipeline_tag: issue 15's
    for needle in ("## Intended use and limitations", "pip install", "import tvr", "recognize the architecture",
                   "tvr card FOLDER --push-to-hub",
                   f'from_pretrained("{folder.name}")', "| data/val.jsonl | val |"):
        assert needle in card.text, needle
    assert not card.data.datasets  # your own jsonl is no Hub dataset
    block = re.search(r"```yaml\n(.*?)```", card.text, re.DOTALL)[1]
    config = TrainingConfig.from_dict(yaml.safe_load(block))  # re-runnable as written
    assert config.from_image_text_model and config.output_dir == str(tmp_path / "run")


def test_the_repository_has_the_license_setup_cfg_declares():
    root = Path(__file__).resolve().parents[1]
    assert "Apache License" in (root / "LICENSE").read_text() and "license_files = LICENSE" in (
        root / "setup.cfg").read_text()


def test_tokenizer_larger_than_the_text_tower_is_an_error(demo, tmp_path, capsys):
    code, _, err = run(["convert", "clip", CLIP_FILE, tmp_path / "clip", "--tokenizer", demo / "model"], capsys)
    assert code == 1 and "571 tokens" in err and "embeds only 320" in err


# ------------------------------------------------------------ 2. converted folders hold a processor; --processor


def test_converted_method_folder_works_with_eval_and_index(demo, tokenizer_dir, tmp_path, capsys):
    model_dir = tmp_path / "clip4clip"
    code, _, err = run(["convert", "clip4clip", CLIP4CLIP_FILE, model_dir, "--tokenizer", tokenizer_dir], capsys)
    assert code == 0 and (model_dir / "processor_config.json").is_file()
    code, out, err = run(["eval", model_dir, "--dataset", "jsonl", "--annotations", demo / "data" / "test.jsonl",
                          "--output", tmp_path / "results.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "results.json").read_text())["num_videos"] == 5


def test_folder_without_processor_names_the_fix_and_takes_processor(demo, tokenizer_dir, tmp_path, capsys):
    model_dir = tmp_path / "clip4clip"
    code, _, err = run(["convert", "clip4clip", CLIP4CLIP_FILE, model_dir], capsys)
    assert code == 0 and "--tokenizer" in err and not (model_dir / "processor_config.json").exists()
    code, _, err = run(["eval", model_dir, "--dataset", "jsonl", "--annotations", demo / "data" / "test.jsonl"],
                       capsys)
    # before: an error about video_preprocessor_config.json
    assert code == 1 and "has no processor" in err and "--processor" in err
    code, out, err = run(["eval", model_dir, "--dataset", "jsonl", "--annotations", demo / "data" / "test.jsonl",
                          "--processor", tokenizer_dir], capsys)
    assert code == 0 and "t2v_R@1" in out
    code, out, err = run(["index", model_dir, demo / "data" / "videos", tmp_path / "index", "--processor",
                          tokenizer_dir], capsys)
    assert code == 0 and "indexed 17 videos" in out
    code, out, err = run(["search", tmp_path / "index", "a red square", "--top-k", "2", "--json"], capsys)
    answer = json.loads(out)
    assert answer[0]["query"] == "a red square" and len(answer[0]["results"]) == 2
    assert all(os.path.isabs(result["path"]) for result in answer[0]["results"])  # item 8: not build-dir relative


# ------------------------------------------------------------------------- 3. typed config fields are converted


def test_yaml_config_numbers_are_converted_and_bad_values_name_the_field(tmp_path, capsys):
    from tvr.training import TrainingConfig

    path = tmp_path / "train.yaml"
    path.write_text("lr: 1e-4\ncoef_lr: 1e-3\nepochs: 2\ncache_videos: 'true'\nmax_grad_norm: none\n")
    config = TrainingConfig.from_file(path)
    assert (config.lr, config.coef_lr, config.epochs, config.cache_videos) == (1e-4, 1e-3, 2, True)
    assert config.max_grad_norm is None
    assert isinstance(config.lr, float)
    path.write_text("lr: fast\n")
    code, _, err = run(["train", "--config", path], capsys)
    assert code == 1 and f"{path}: TrainingConfig: field 'lr' expects a number, got 'fast'" in err
    with pytest.raises(ValueError, match="field 'epochs' expects an integer, got 2.5"):
        TrainingConfig(epochs=2.5)


# ------------------------------------------------------------------ 5. generic data: paths and split labels


def test_eval_demo_model_on_its_own_jsonl_with_videos_folder(demo, capsys, tmp_path):
    code, out, err = run(["eval", demo / "model", "--dataset", "jsonl", "--annotations", demo / "data" / "test.jsonl",
                          "--videos", demo / "data" / "videos", "--output", tmp_path / "r.json"], capsys)
    assert code == 0, err  # before: video_path 'videos/x.mp4' joined onto --videos, every video missing
    results = json.loads((tmp_path / "r.json").read_text())
    assert (results["split"], results["num_videos"]) == ("test", 5)


def test_split_must_match_a_file_named_after_one(demo, capsys):
    code, _, err = run(["eval", demo / "model", "--dataset", "jsonl", "--annotations", demo / "data" / "test.jsonl",
                        "--split", "val"], capsys)
    assert code == 1 and "holds the 'test' split, not 'val'" in err


def test_missing_videos_show_the_paths_tried(demo, tmp_path):
    from tvr.data import load_generic

    (tmp_path / "test.jsonl").write_text('{"video_path": "clips/a.mp4", "caption": "a dog"}\n')
    with pytest.warns(UserWarning, match=r"looked for clips/a\.mp4 at \S*videos/clips/a\.mp4 and"):
        load_generic(tmp_path / "test.jsonl", tmp_path / "videos")


def test_train_data_needs_a_split():
    from tvr.training import TrainingConfig

    with pytest.raises(ValueError, match="train_data needs a 'split'"):
        TrainingConfig(train_data={"name": "generic", "annotation_dir": "x.jsonl"})


# ------------------------------------------------------------------------------------------- 8. one CLI style


def test_train_flags_are_kebab_case_with_snake_case_aliases_and_defaults_in_help(capsys):
    import argparse

    from tvr.training.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    new = config_from_args(parser.parse_args(["--batch-size", "8", "--coef-lr", "1e-3", "--set", "sim_header=meanP",
                                              "--set", "max_frames=4", "--push-to-hub", "me/model"]))
    old = config_from_args(parser.parse_args(["--batch_size", "8", "--coef_lr", "1e-3", "--model_kwargs",
                                              "sim_header=meanP", "max_frames=4", "--push_to_hub", "true",
                                              "--hub_model_id", "me/model"]))
    assert new == old and new.model_kwargs == {"sim_header": "meanP", "max_frames": 4} and new.push_to_hub
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--batch-size" in help_text and "--batch_size" not in help_text and "(default: 128)" in help_text


def test_user_errors_are_one_line(capsys, tmp_path):
    code, out, err = run(["eval", tmp_path / "nothing", "--dataset", "jsonl", "--annotations", tmp_path], capsys)
    assert code == 1 and err.startswith("tvr: error: model folder") and len(err.splitlines()) == 1, err
    assert "Traceback" not in err


def test_resume_from_latest_with_nothing_saved_starts_fresh(demo, tmp_path, capsys):
    code, out, err = run(["train", "--processor", demo / "model", "--model-kwargs",
                          "text_config={vocab_size: 571, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, "
                          "num_attention_heads: 2}",
                          "vision_config={hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, "
                          "num_attention_heads: 2, image_size: 32, patch_size: 16}", "sim_header=meanP",
                          "--train-data", "name=generic", f"annotation_dir={demo / 'data' / 'train.jsonl'}",
                          "split=train", "--epochs", "1", "--batch-size", "4", "--output-dir", tmp_path / "run",
                          "--resume-from", "latest"], capsys)
    assert code == 0, err  # before: FileNotFoundError: no complete checkpoint
    assert "starting fresh" in out and (tmp_path / "run" / "final" / "config.json").is_file()


def test_python_dash_m_tvr_runs_the_cli():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "tvr", "--help"], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "usage: tvr" in result.stdout


def test_import_tvr_reaches_every_subpackage():
    """Item 4, in a fresh interpreter (in this one other tests have imported them already)."""
    root = Path(__file__).resolve().parents[1]
    code = ("import tvr; tvr.data.load_generic; tvr.evaluation.compute_retrieval_metrics; tvr.retrieval.VideoIndex; "
            "tvr.training.TrainingConfig; tvr.hub_cards.write_model_card; tvr.convert.convert_openai_clip; "
            "print(sorted(set(tvr.SUBPACKAGES) - set(dir(tvr))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_every_option_of_every_command_has_help():
    import argparse

    from tvr.cli import build_parser

    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command, subparser in action.choices.items():
                    walk(subparser, f"{name} {command}")
            elif action.help is None and action.dest != "help":
                missing.append(f"{name} {action.option_strings or action.dest}")

    walk(build_parser(), "tvr")
    assert missing == []


# ------------------------------------------------------------------------------------------- `tvr --help` is quick


def test_tvr_help_lists_every_command_without_importing_torch(capsys):
    from tvr.cli import COMMANDS, build_parser

    parser = build_parser()  # every command's module imported
    subcommands = next(action for action in parser._actions if action.dest == "command")
    declared = {choice.dest: choice.help for choice in subcommands._choices_actions}
    assert declared == {name: command.help for name, command in COMMANDS.items()}  # the one list: tvr.cli's
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    printed = capsys.readouterr().out
    assert exit_info.value.code == 0 and all(f"  {name}  " in printed or f"  {name} " in printed for name in declared)
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2 and "COMMAND" in capsys.readouterr().err
    # in a fresh interpreter, as the console script runs it: nothing heavy is imported for the help
    for argv in (["--help"], *([name, "--help"] for name in LIGHT_HELP)):
        probe = ("import contextlib, io, sys, tvr.cli\n"
                 "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
                 f"    tvr.cli.main({argv})\n"
                 "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                                cwd=Path(__file__).resolve().parents[1])
        assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "[]", (argv, result.stderr[-2000:])


# the commands whose --help loads neither torch nor transformers; the others' still do: `convert` and `demo` list the
# registered methods' converters / heads (tvr.methods), `index` and `search` sit in tvr.retrieval, whose __init__
# imports index.py (torch)
LIGHT_HELP = ("compress", "train", "eval", "merge", "card", "app", "space")
