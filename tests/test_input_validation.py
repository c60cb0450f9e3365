"""Inputs that enter tvr are checked where they enter, and errors name the bad input and what was expected."""

import pytest

import tvr
from tvr.cli import main


@pytest.mark.parametrize("config_class, values, message", [
    (tvr.CLIP4ClipConfig, dict(max_frames=0), "max_frames must be >= 1, got 0"),
    (tvr.CLIP4ClipConfig, dict(max_frames=-3), "max_frames must be >= 1, got -3"),
    (tvr.EMCLConfig, dict(max_words=2), r"max_words must be >= 3 \(start, end and one word token\), got 2"),
    (tvr.EMCLConfig, dict(em_beta=float("nan")), "em_beta must be a finite number, got nan"),
    (tvr.EMCLConfig, dict(em_beta=float("inf")), "em_beta must be a finite number, got inf"),
    (tvr.EMCLConfig, dict(em_momentum=1.0), r"em_momentum must be in \[0, 1\), got 1.0"),
    (tvr.EMCLConfig, dict(em_momentum=-0.5), r"em_momentum must be in \[0, 1\), got -0.5"),
])
def test_config_fields_are_checked(config_class, values, message):
    with pytest.raises(Exception, match=message):
        config_class(**values)


def test_convert_on_junk_names_the_file_and_never_suggests_unpickling(tmp_path):
    from tvr.convert.openai_clip import load_original_state_dict

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="checkpoint '.*junk.pt' could not be read") as error:
        load_original_state_dict(junk)
    assert "weights_only=False" not in str(error.value)


def test_eval_names_a_missing_model_folder_and_a_truncated_safetensors(tmp_path):
    from test_evaluation_harness import make_tiny_clip4clip

    args = ["--dataset", "jsonl", "--annotations", str(tmp_path / "data"), "--device", "cpu"]
    with pytest.raises(FileNotFoundError, match="model folder '.*no_such_model' has no config.json"):
        main(["eval", str(tmp_path / "no_such_model"), *args])

    model, processor, _ = make_tiny_clip4clip(tmp_path)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="model folder '.*model'.*model.safetensors.*truncated or damaged"):
        main(["eval", str(tmp_path / "model"), *args])


# ------------------------------------------------------------------------------------------------ training options


@pytest.mark.parametrize("values, message", [
    (dict(save_total_limit=-1), r"save_total_limit must be >= 1 \(or null: keep every checkpoint\), got -1"),
    (dict(save_total_limit=0), r"save_total_limit must be >= 1"),
    (dict(max_grad_norm=-1), r"max_grad_norm must be >= 0 \(or null: no clipping, as 0\), got -1.0"),
    (dict(lr=-1e-4), "lr must be > 0, got -0.0001"),
    (dict(lr=float("nan")), "lr must be > 0, got nan"),
    (dict(coef_lr=-1), "coef_lr must be >= 0, got -1.0"),
    (dict(epochs=-2), "epochs must be >= 0, got -2"),
    (dict(batch_size=-4), "batch_size must be >= 1, got -4"),
    (dict(warmup_proportion=1.5), r"warmup_proportion must be in \[0, 1\), got 1.5"),
    (dict(warmup_proportion=-0.1), r"warmup_proportion must be in \[0, 1\), got -0.1"),
    (dict(adam_beta2=1.0), r"adam_beta2 must be in \[0, 1\), got 1.0"),
    (dict(weight_decay=-0.2), "weight_decay must be >= 0, got -0.2"),
    (dict(eval_batch_size=0), "eval_batch_size must be >= 1, got 0"),
    (dict(logging_steps=0), "logging_steps must be >= 1, got 0"),
    (dict(num_workers=-1), "num_workers must be >= 0, got -1"),
    (dict(seed=-1), r"seed must be in \[0, 4294967295\], got -1"),
])
def test_training_numbers_are_checked_for_their_range(values, message):
    from tvr.training import TrainingConfig

    with pytest.raises(ValueError, match=f"TrainingConfig: {message}"):
        TrainingConfig(**values)


def test_defaults_and_nulls_of_training_numbers_are_valid():
    from tvr.training import TrainingConfig

    config = TrainingConfig(max_grad_norm=0, save_total_limit=None, save_steps=None, epochs=0, max_steps=3)
    assert (config.max_grad_norm, config.save_total_limit) == (0.0, None)


@pytest.fixture()
def saved_tiny_model(tmp_path):
    from test_evaluation_harness import make_tiny_clip4clip

    model, processor, _ = make_tiny_clip4clip(tmp_path)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_tvr_train_names_a_bad_option_in_one_line(tmp_path, saved_tiny_model, capsys):
    """Out-of-range numbers, misspelt model / processor keys, values of the wrong type and damaged weights: `tvr
    train` says which, in one line, before training (a typo used to train the default model, -1 limits deleted
    every checkpoint, a wrong type gave a traceback)."""
    from tvr.cli import console_main

    train = ["train", "--init-from", str(saved_tiny_model), "--train-data", "name=generic",
             f"annotation_dir={tmp_path / 'none.jsonl'}", "split=train"]
    cases = [
        (["--save-total-limit", "-1"], "command line: TrainingConfig: save_total_limit must be >= 1 (or null: keep "
                                       "every checkpoint), got -1"),
        (["--max-grad-norm", "-1"], "max_grad_norm must be >= 0"),
        (["--set", "sim_headr=meanP"], "unknown key in model_kwargs / --set (fields of CLIP4ClipConfig): "
                                       "'sim_headr' (did you mean 'sim_header'?)"),
        (["--model-kwargs", "max_framez=4"], "'max_framez' (did you mean 'max_frames'?)"),
        (["--processor-kwargs", "max_framez=4"], "unknown key in processor_kwargs: 'max_framez' (did you mean "
                                                 "'max_frames'?)"),
        # a value of the wrong type: named with its option (it used to surface as undecodable videos / a traceback)
        (["--processor-kwargs", "max_frames=abc"], "processor setting max_frames='abc' is not valid: expected int; "
                                                   "fix it in --processor-kwargs"),
        (["--set", "max_frames=abc"], "model_kwargs / --set: Validation error for field 'max_frames'"),
    ]
    for number, (flags, message) in enumerate(cases):
        output_dir = tmp_path / f"run{number}"
        assert console_main([*train, *flags, "--output-dir", str(output_dir)]) == 1, flags
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tvr: error: ")]
        assert len(errors) == 1 and message in errors[0], (flags, errors)

    weights = saved_tiny_model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert console_main([*train, "--output-dir", str(tmp_path / "truncated")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tvr: error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"tvr: error: init_from '{saved_tiny_model}': its weights (model.safetensors) could not be read, the file is "
        "truncated or damaged")
