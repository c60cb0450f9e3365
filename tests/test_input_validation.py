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
