"""The converters' shared `--original-args` / `--set` reading."""

import argparse

import pytest

from tvr.convert.arguments import add_config_arguments, config_overrides, parse_original_args, parse_set_arguments


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
    assert config_overrides(args, flag_map) == {"max_frames": 8, "em_num_bases": 16, "em_bases_seed": 3,
                                                "note": "seed 3"}
