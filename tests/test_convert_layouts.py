"""A checkpoint given to the wrong converter names the converter that reads it (read from its keys)."""

from __future__ import annotations

import pytest
import torch

from conftest import FIXTURES
from tvr.cli import main
from tvr.convert import load_original_state_dict
from tvr.convert.layouts import detect_layout

INTERNVIDEO = FIXTURES / "internvideo" / "tiny_w32_f4_ret23"
CHECKPOINTS = {
    "clip4clip": FIXTURES / "clip4clip" / "seqTransf_2d" / "pytorch_model.bin",
    "clip4clip tight": FIXTURES / "clip4clip" / "tightTransf_2d" / "pytorch_model.bin",
    "emcl": FIXTURES / "emcl" / "tiny_w64_default_em" / "pytorch_model.bin",
    "eercf": FIXTURES / "eercf" / "tiny_b4_f4_topk2" / "pytorch_model.bin",
    "davrl": FIXTURES / "davrl" / "tiny_dual_attention" / "pytorch_model.bin",
    "internvideo": INTERNVIDEO / "pytorch_model.bin",
    "internvideo pretrained": INTERNVIDEO / "internvideo_pretrained.ckpt",
    "openai clip": FIXTURES / "clip4clip" / "clip_openai_state_dict.bin",
}
USE = {
    "clip4clip": "a CLIP4Clip or EMCL-Net checkpoint (keys 'clip.ln_final.bias', 'clip.ln_final.weight', ...), which "
                 "tvr convert {converter} does not read: use tvr convert clip4clip or tvr convert emcl",
    "clip4clip tight": "a CLIP4Clip tightTransf checkpoint (keys 'cross.embeddings.position_embeddings.weight', "
                       "'cross.pooler.dense.bias', ...), which tvr convert {converter} does not read: use tvr convert "
                       "clip4clip",
    "eercf": "an EERCF checkpoint (keys 'frame_logit_weight', 'global_mat_weight'), which tvr convert {converter} does "
             "not read: use tvr convert eercf",
    "davrl": "a DAVRL (dual-attention) checkpoint (keys 'clip.transformer.resblocks.0.attn.TVPt_LoRA_a', "
             "'clip.transformer.resblocks.0.attn.TVPt_LoRA_b', ...), which tvr convert {converter} does not read: use "
             "tvr convert dual_attention",
    "internvideo": "an InternVideo (CLIP-EVL) checkpoint (keys 'clip.visual.transformer.balance', "
                   "'clip.visual.transformer.dec.0.attn.in_proj_bias', ...), which tvr convert {converter} does not "
                   "read: use tvr convert internvideo or tvr convert internvideo-zeroshot",
    "openai clip": "an OpenAI CLIP checkpoint (keys 'text_projection', 'token_embedding.weight', ...), which tvr "
                   "convert {converter} does not read: use tvr convert clip",
}
USE["emcl"] = USE["clip4clip"]
USE["internvideo pretrained"] = USE["internvideo"]
WRONG = [  # (converter, checkpoint): every method's checkpoint given to converters of other methods
    ("clip4clip", "davrl"), ("clip4clip", "internvideo"), ("clip4clip", "eercf"), ("clip4clip", "openai clip"),
    ("emcl", "clip4clip tight"), ("emcl", "eercf"), ("emcl", "internvideo pretrained"),
    ("eercf", "clip4clip"), ("eercf", "emcl"), ("eercf", "davrl"), ("eercf", "internvideo"),
    ("clip", "internvideo"), ("clip", "clip4clip"), ("clip", "davrl"), ("clip", "eercf"),
    ("internvideo", "emcl"), ("internvideo", "davrl"), ("internvideo", "openai clip"),
    ("internvideo-zeroshot", "davrl"), ("internvideo-zeroshot", "clip4clip tight"),
    ("dual_attention", "internvideo"), ("dual_attention", "clip4clip"), ("dual_attention", "eercf"),
]


@pytest.mark.parametrize(("converter", "checkpoint"), WRONG)
def test_a_wrong_method_checkpoint_names_the_right_converter(converter, checkpoint, tmp_path):
    options = ["--clip", str(CHECKPOINTS["openai clip"])] if converter == "internvideo-zeroshot" else []
    command = ["convert", converter, str(CHECKPOINTS[checkpoint]), str(tmp_path / "out"), *options]
    with pytest.raises(ValueError) as error:
        main(command)
    assert str(error.value) == (f"checkpoint {str(CHECKPOINTS[checkpoint])!r} looks like "
                                + USE[checkpoint].format(converter=converter))
    assert not (tmp_path / "out").exists()


def test_a_method_checkpoint_given_as_the_clip_file_is_named():
    with pytest.raises(ValueError, match=r"--clip file '.*eercf.*' looks like an EERCF checkpoint .* which tvr "
                                         r"convert clip does not read"):
        main(["convert", "clip4clip", str(CHECKPOINTS["clip4clip"]), "/nonexistent/out", "--clip",
              str(CHECKPOINTS["eercf"])])


def test_resnet_clip_is_named_as_unsupported(tmp_path):
    resnet = {"visual.layer1.0.conv1.weight": torch.zeros(1), "visual.attnpool.positional_embedding": torch.zeros(1),
              "token_embedding.weight": torch.zeros(1)}
    torch.save(resnet, tmp_path / "RN50.bin")
    with pytest.raises(ValueError, match=r"looks like a ResNet CLIP checkpoint \(keys 'visual.attnpool.positional_"
                                         r"embedding', 'visual.layer1.0.conv1.weight'\), which tvr convert clip does "
                                         r"not read: tvr converts ViT CLIP models only"):
        main(["convert", "clip", str(tmp_path / "RN50.bin"), str(tmp_path / "out")])


def test_clip4clip_and_emcl_share_one_layout():
    # EMCL-Net saves CLIP4Clip's keys (no EM bases): the keys cannot tell them apart, both converters read both
    for name in ("clip4clip", "emcl"):
        layout, _ = detect_layout(load_original_state_dict(CHECKPOINTS[name]))
        assert layout.key == "clip4clip" and layout.converters == ("clip4clip", "emcl")


def test_eercf_reads_a_clip4clip_checkpoint_filled_by_its_clip_file(tmp_path):
    # as the original's --init_model: CLIP4Clip seqTransf weights start an EERCF model when --clip is given
    assert main(["convert", "eercf", str(CHECKPOINTS["clip4clip"]), str(tmp_path / "out"), "--clip",
                 str(CHECKPOINTS["openai clip"])]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
