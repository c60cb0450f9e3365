"""`--original-args "FLAGS"` on every converter: the original run's command line, pasted, sets the config; `--set` and
a converter's own options win over it."""

import json
import shlex

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from conftest import FIXTURES
from tvr.cli import main
from tvr.methods.dual_attention.convert import FLAG_MAP as DAVRL_FLAGS


def flags(args: dict) -> str:
    """An argparse namespace (a fixture's meta.json "args") as the command line that produced it."""
    return " ".join(f"--{name} {shlex.quote(str(value))}" for name, value in args.items() if value is not None)


def convert(kind, checkpoint, output, *arguments):
    assert main(["convert", kind, str(checkpoint), str(output), *arguments]) == 0
    return json.loads((output / "config.json").read_text())


def test_emcl_original_namespace_gives_the_reference_model(tmp_path):
    folder = FIXTURES / "emcl" / "tiny_w128_2heads_custom_em"
    meta = json.loads((folder / "meta.json").read_text())
    args = meta["args"]
    config = convert("emcl", folder / "pytorch_model.bin", tmp_path / "a", "--original-args", flags(args))
    assert (config["frame_pooling_temperature"], config["em_num_bases"], config["em_num_stages"]) == (
        args["temp"], args["centerK"], args["stage_num"])
    assert (config["em_temperature"], config["em_beta"], config["em_momentum"]) == (
        args["lamd"], args["beta"], args["momentum"])
    assert (config["em_bases_seed"], config["max_frames"], config["max_words"]) == (
        args["seed"], args["max_frames"], args["max_words"])
    model = AutoModel.from_pretrained(tmp_path / "a").eval()
    inputs, expected = load_file(folder / "inputs.safetensors"), load_file(folder / "expected.safetensors")
    with torch.no_grad():
        text = model.encode_text(inputs["text_ids"], inputs["text_mask"])
        video = model.encode_video(inputs["video"], inputs["video_mask"])
        cosine = model.similarity(text, video) / model.logit_scale.exp()
    torch.testing.assert_close(model.em.bases, inputs["emcl_mu_init"], rtol=0, atol=0)  # --seed drew the bases
    torch.testing.assert_close(cosine, expected["sim_t2v"], rtol=1e-4, atol=1e-5)

    # --set wins over --original-args, --em-bases-seed over both
    config = convert("emcl", folder / "pytorch_model.bin", tmp_path / "b", "--original-args", flags(args),
                     "--set", "em_num_bases=8", "--set", "em_bases_seed=5", "--em-bases-seed", "7")
    assert (config["em_num_bases"], config["em_bases_seed"]) == (8, 7)


def test_clip4clip_original_flags_and_precedence(tmp_path):
    checkpoint = FIXTURES / "clip4clip" / "seqTransf_2d" / "pytorch_model.bin"
    original = "--do_train --max_frames 4 --max_words 8 --sim_header seqTransf --cross_num_hidden_layers 4 --lr 1e-4"
    config = convert("clip4clip", checkpoint, tmp_path / "a", "--original-args", original)
    assert (config["max_frames"], config["max_words"], config["sim_header"]) == (4, 8, "seqTransf")
    config = convert("clip4clip", checkpoint, tmp_path / "b", "--original-args", original, "--set", "max_words=6",
                     "--max-frames", "5")
    assert (config["max_frames"], config["max_words"]) == (5, 6)
    config = convert("clip4clip", checkpoint, tmp_path / "c")  # neither: the config's defaults
    assert (config["max_frames"], config["max_words"]) == (12, 32)


def test_eercf_original_flags_and_precedence(tmp_path):
    checkpoint = FIXTURES / "eercf" / "tiny_b4_f4_topk2" / "pytorch_model.bin"
    original = "--rerantopk 2 --max_words 16 --max_frames 4 --loose_type --sim_header seqTransf"
    config = convert("eercf", checkpoint, tmp_path / "a", "--original-args", original)
    assert (config["rerank_top_k"], config["max_words"], config["max_frames"]) == (2, 16, 4)
    config = convert("eercf", checkpoint, tmp_path / "b", "--original-args", original, "--rerank-top-k", "3",
                     "--set", "max_words=12")
    assert (config["rerank_top_k"], config["max_words"]) == (3, 12)
    config = convert("eercf", checkpoint, tmp_path / "c")
    assert (config["rerank_top_k"], config["max_words"], config["max_frames"]) == (50, 32, 4)


def test_dual_attention_reads_the_scripts_flags(tmp_path):
    checkpoint = FIXTURES / "davrl" / "tiny_dual_attention" / "pytorch_model.bin"
    original = ("--max_frames 4 --sel_layer 2 --r 3 --alpha 0.25 --seg_layer 3-4 --seg_num 2-1 --frame_per_seg 2-4 "
                "--visual_output_type average_global_token --select Dual-Attention --max_words 16 --clip_lr 6e-4")
    assert main(["convert", "dual_attention", str(checkpoint), str(tmp_path), "--original-args", original,
                 "--set", "alpha=0.5"]) == 0
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert (config["sel_layers"], config["r_drop"], config["alpha"]) == ([2], 3, 0.5)
    assert (config["seg_layers"], config["seg_num"], config["frame_per_seg"]) == ([3, 4], [2, 1], [2, 4])
    assert (config["visual_output_type"], config["select"], config["max_words"]) == (
        "average_global_token", "dual_attention", 16)
    # a config its class refuses is the user's input: a ValueError (one line from the CLI), not a validation traceback
    with pytest.raises(ValueError, match="tvr convert dual_attention: the converted model's config is invalid: "
                                         "frame_per_seg \\* seg_num != max_frames"):
        main(["convert", "dual_attention", str(checkpoint), str(tmp_path / "bad"), "--original-args",
              original.replace("--frame_per_seg 2-4", "--frame_per_seg 2-2")])
    assert set(DAVRL_FLAGS) >= {"sel_layer", "r", "alpha", "seg_layer", "seg_num", "frame_per_seg", "max_frames"}


INTERNVIDEO = FIXTURES / "internvideo" / "tiny_w32_f4_ret23"
CONVERTERS = {  # every converter that takes --original-args: its arguments before the options
    "clip4clip": [str(FIXTURES / "clip4clip" / "seqTransf_2d" / "pytorch_model.bin")],
    "emcl": [str(FIXTURES / "emcl" / "tiny_w64_default_em" / "pytorch_model.bin")],
    "eercf": [str(FIXTURES / "eercf" / "tiny_b4_f4_topk2" / "pytorch_model.bin")],
    "internvideo": [str(INTERNVIDEO / "pytorch_model.bin")],
    "internvideo-zeroshot": [str(INTERNVIDEO / "internvideo_pretrained.ckpt"), "--clip",
                             str(INTERNVIDEO / "clip_openai_state_dict.bin")],
    "dual_attention": [str(FIXTURES / "davrl" / "tiny_dual_attention" / "pytorch_model.bin")],
}


@pytest.mark.parametrize("converter", CONVERTERS)
def test_a_misspelt_original_flag_is_refused_by_every_converter(converter, tmp_path):
    checkpoint, *options = CONVERTERS[converter]
    command = ["convert", converter, checkpoint, str(tmp_path / "out"), *options]
    with pytest.raises(ValueError, match=r"--original-args: .* has no flag '--max_framez' \(did you mean "
                                         r"'--max_frames'\?\)"):
        main([*command, "--original-args", "--max_frames 4 --max_framez 24"])
    with pytest.raises(ValueError, match=r"unknown key in --set .*'max_framez' \(did you mean 'max_frames'\?\)"):
        main([*command, "--set", "max_framez=24"])
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_emcl_flag_typo_names_the_original_spelling(tmp_path):
    with pytest.raises(ValueError, match=r"'--centerk' \(did you mean '--centerK'\?\)"):
        main(["convert", "emcl", *CONVERTERS["emcl"], str(tmp_path / "out"), "--original-args", "--centerk 16"])
