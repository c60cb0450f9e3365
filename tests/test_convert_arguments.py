"""The converters' shared `--original-args` / `--set` reading."""

import argparse

import pytest

from tvr import CLIP4ClipConfig, InternVideoConfig
from tvr.convert.arguments import (
    OriginalFlags,
    add_config_arguments,
    config_keys,
    config_overrides,
    parse_original_args,
    parse_set_arguments,
)

ORIGINAL = OriginalFlags("EMCL-Net's main_retrieval.py", "max_frames max_words centerK seed lr local_rank")


def test_original_flags_are_read_as_the_original_parsed_them():
    flags = parse_original_args(
        "--do_train --sel_layer 6 --r 10 --alpha 0.4 --seg_layer 8-9-10 --seg_num 6-3-1 "
        "--output_dir 'ckpts/my run' --datatype msrvtt --lr=1e-4 --pair 1 2"
    )
    assert flags == {
        "do_train": True, "sel_layer": 6, "r": 10, "alpha": 0.4, "seg_layer": "8-9-10", "seg_num": "6-3-1",
        "output_dir": "ckpts/my run", "datatype": "msrvtt", "lr": 1e-4, "pair": [1, 2],
    }
    with pytest.raises(ValueError, match="'stray' is not a flag"):
        parse_original_args("stray --a 1")


def test_set_values_are_yaml():
    assert parse_set_arguments(["extractor_layers=[20,21]", "max_frames=12", "name=x=y"]) == {
        "extractor_layers": [20, 21], "max_frames": 12, "name": "x=y"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set_arguments(["max_frames"])


def test_overrides_map_the_original_flags_then_set_wins():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--original-args", "--max_frames 12 --centerK 16 --seed 3 --lr 1e-4",
                              "--set", "max_frames=8"])
    flag_map = {"max_frames": "max_frames", "centerK": "em_num_bases",
                "seed": lambda seed: {"em_bases_seed": seed, "note": f"seed {seed}"}}
    assert config_overrides(args, flag_map, original=ORIGINAL, known={"max_frames"}) == {
        "max_frames": 8, "em_num_bases": 16, "em_bases_seed": 3, "note": "seed 3"}


def overrides(original_args: str = "", *set_pairs: str, known=("max_frames",)) -> dict:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--original-args", original_args, *[item for pair in set_pairs for item in ("--set", pair)]])
    return config_overrides(args, {"max_frames": "max_frames", "centerK": "em_num_bases"}, original=ORIGINAL,
                            known=known)


def test_a_misspelt_original_flag_is_an_error_with_the_closest_flag():
    with pytest.raises(ValueError, match=r"--original-args: EMCL-Net's main_retrieval.py has no flag '--max_framez' "
                                         r"\(did you mean '--max_frames'\?\), '--centerk' \(did you mean '--centerK'\?\); "
                                         r"fix the spelling"):
        overrides("--max_framez 24 --centerk 16 --lr 1e-4")
    with pytest.raises(ValueError, match=r"has no flag '--m' \(ambiguous\)"):
        overrides("--m 3")  # a prefix of two flags: argparse refuses it too


def test_original_flags_are_matched_as_argparse_matches_them():
    # the script's flags that do not shape the model are accepted and ignored; a unique prefix is the flag
    assert overrides("--max_fr 24 --cent 8 --lr 1e-4 --local_rank 0") == {"max_frames": 24, "em_num_bases": 8}


def test_unknown_set_keys_are_errors_with_the_closest_field():
    with pytest.raises(ValueError, match=r"unknown key in --set .*: 'max_framez' \(did you mean 'max_frames'\?\)"):
        overrides("", "max_framez=4")
    keys = config_keys(CLIP4ClipConfig, "temporal_heads")
    assert {"max_frames", "sim_header", "temporal_config", "temporal_heads"} <= keys and "max_framez" not in keys
    towers = config_keys(InternVideoConfig, towers=("vision_config",))
    assert {"vision_config.num_attention_heads", "extractor_layers"} <= towers
    assert "text_config.num_attention_heads" not in towers
