"""Parity of converted original EMCL-Net checkpoints with the reference outputs (tests/fixtures/emcl, made by running
github.com/jpthu17/EMCL on CPU), through `tvr convert emcl`."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

import tvr.cli
from tvr.evaluation.postprocessing import dual_softmax
from tvr.methods.emcl.configuration import EMCLConfig
from tvr.methods.emcl.em import initial_em_bases
from tvr.methods.emcl.modeling import EMCLModel

FIXTURE_ROOT = pathlib.Path(__file__).parent / "fixtures" / "emcl"
CASES = ["tiny_w64_default_em", "tiny_w128_2heads_custom_em"]
FP32 = {"rtol": 1e-4, "atol": 1e-5}  # the fixtures' suggested tolerances
TRAIN = {"rtol": 1e-5, "atol": 1e-4}
# original argument -> EMCLConfig field
ARGUMENT_FIELDS = {
    "temp": "frame_pooling_temperature",
    "centerK": "em_num_bases",
    "stage_num": "em_num_stages",
    "lamd": "em_temperature",
    "beta": "em_beta",
    "momentum": "em_momentum",
}


class Case:
    """A fixture case converted with `tvr convert emcl`, with its inputs and reference outputs."""

    def __init__(self, name: str, output_dir: pathlib.Path):
        folder = FIXTURE_ROOT / name
        self.meta = json.loads((folder / "meta.json").read_text())
        self.inputs = load_file(folder / "inputs.safetensors")
        self.expected = load_file(folder / "expected.safetensors")
        self.checkpoint = folder / "pytorch_model.bin"
        self.output_dir = output_dir
        args = self.meta["args"]
        self.cli_args = ["--em-bases-seed", str(args["seed"])]
        for argument, field in ARGUMENT_FIELDS.items():
            self.cli_args += ["--set", f"{field}={args[argument]}"]
        assert tvr.cli.main(["convert", "emcl", str(self.checkpoint), str(output_dir), *self.cli_args]) == 0

    def model(self, **config_overrides) -> EMCLModel:
        return EMCLModel.from_pretrained(self.output_dir, **config_overrides).eval()

    def encodings(self, model: EMCLModel):
        with torch.no_grad():
            text = model.encode_text(self.inputs["text_ids"], self.inputs["text_mask"])
            video = model.encode_video(self.inputs["video"], self.inputs["video_mask"])
        return text, video


@pytest.fixture(scope="module", params=CASES)
def case(request, tmp_path_factory) -> Case:
    return Case(request.param, tmp_path_factory.mktemp(request.param))


def cosine(model: EMCLModel, text, video, **kwargs) -> torch.Tensor:
    """EMCL's logits are exp(logit_scale) * cosine; the reference stores the cosine."""
    with torch.no_grad():
        return model.similarity(text, video, **kwargs) / model.logit_scale.exp()


def test_defaults_are_the_papers():
    args = json.loads((FIXTURE_ROOT / "tiny_w64_default_em" / "meta.json").read_text())["args"]
    config = EMCLConfig()
    for argument, field in ARGUMENT_FIELDS.items():
        assert getattr(config, field) == args[argument], field
    assert (config.em_bases_seed, config.eval_block_size, config.temporal_head) == (args["seed"], 32, "seqTransf")


def test_converted_config_reads_the_checkpoint_and_the_options(case):
    config = case.model().config
    dims, args = case.meta["clip_dims"], case.meta["args"]
    assert config.temporal_head == "seqTransf"
    assert config.temporal_config.num_hidden_layers == args["num_hidden_layers"]
    assert config.temporal_config.layer_norm_eps == 1e-12
    assert config.temporal_config.num_attention_heads == dims["transformer_width"] // 64
    assert config.text_config.num_attention_heads == dims["transformer_heads"]
    assert config.projection_dim == dims["embed_dim"]
    for argument, field in ARGUMENT_FIELDS.items():
        assert getattr(config, field) == args[argument], field
    assert config.em_bases_seed == args["seed"]


def test_encodings_match_the_reference(case):
    text, video = case.encodings(case.model())
    torch.testing.assert_close(text.text_features, case.expected["text_cls"], **FP32)
    torch.testing.assert_close(video.frame_features, case.expected["video_frame_cls"], **FP32)
    # tight enough to catch a temporal LayerNorm with eps 1e-5 instead of 1e-12 (~1.5e-5 here)
    torch.testing.assert_close(video.temporal_features, case.expected["video_frame_feat"], rtol=0, atol=5e-6)


def test_eval_similarity_matches_the_reference(case):
    model = case.model()
    text, video = case.encodings(model)
    torch.testing.assert_close(model.em.bases, case.inputs["emcl_mu_init"], rtol=0, atol=0)
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v"], **FP32)
    with torch.no_grad():
        output = model(
            case.inputs["text_ids"], case.inputs["text_mask"], case.inputs["video"], case.inputs["video_mask"]
        )
    scale = model.logit_scale.exp()
    torch.testing.assert_close(output.logits_per_text / scale, case.expected["sim_t2v"], **FP32)
    torch.testing.assert_close(output.logits_per_video / scale, case.expected["sim_v2t"], **FP32)


def test_block_size_reproduces_the_reference_block_loop(case):
    """EM runs per block: blocks of 2 texts x 2 videos give the reference's `sim_t2v_chunk2`, whether `similarity`
    blocks a whole set itself or the evaluation harness hands it blocks (of the config's size or a multiple)."""
    expected = case.expected["sim_t2v_chunk2"]
    model = case.model()
    text, video = case.encodings(model)
    torch.testing.assert_close(cosine(model, text, video, block_size=2), expected, **FP32)
    assert not torch.allclose(expected, case.expected["sim_t2v"], atol=1e-3)

    model = case.model(eval_block_size=2)
    torch.testing.assert_close(cosine(model, text, video), expected, **FP32)
    scale = model.logit_scale.exp()
    # the model scores a gallery in its own EM blocks; an explicit block size overrides them
    torch.testing.assert_close(model.score_gallery(text, video) / scale, expected, **FP32)
    default_model = case.model()
    torch.testing.assert_close(default_model.score_gallery(text, video, block_size=2) / scale, expected, **FP32)


def test_em_off_matches_beta_zero(case):
    model = case.model(em_beta=0)
    text, video = case.encodings(model)
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v_no_em"], **FP32)


def test_dsl_postprocessing_matches_the_reference(case):
    """The original's inverted softmax, `S * softmax(S / 0.01) * n` on cosines, is tvr's `dual_softmax`; on EMCL's
    logits (cosine x 100) the harness default `temperature=1` is the same up to the constant factor."""
    model = case.model()
    text, video = case.encodings(model)
    sim = cosine(model, text, video)
    num_texts = sim.shape[0]
    torch.testing.assert_close(dual_softmax(sim, 0.01) * num_texts, case.expected["sim_t2v_dsl"].double(), **FP32)
    torch.testing.assert_close(
        dual_softmax(sim.t(), 0.01).t() * num_texts, case.expected["sim_v2t_dsl"].double(), **FP32
    )
    with torch.no_grad():
        logits = model.similarity(text, video)
    scaled = dual_softmax(logits, 1.0) * num_texts / model.logit_scale.exp().double()
    torch.testing.assert_close(scaled, case.expected["sim_t2v_dsl"].double(), **FP32)


def test_training_forward_loss_grads_and_bases_update(case):
    model = case.model()
    text, video = case.encodings(model)
    model.train()
    output = model(
        case.inputs["text_ids"], case.inputs["text_mask"], case.inputs["video"], case.inputs["video_mask"],
        return_loss=True,
    )
    output.loss.backward()
    torch.testing.assert_close(output.loss, case.expected["train_loss"], **TRAIN)
    torch.testing.assert_close(model.clip.logit_scale.grad, case.expected["grad_logit_scale"], **TRAIN)
    torch.testing.assert_close(
        model.temporal.frame_position_embeddings.weight.grad, case.expected["grad_frame_position_embeddings"], **TRAIN
    )
    assert model.em.bases.grad is None and not model.em.bases.requires_grad
    torch.testing.assert_close(model.em.bases, case.expected["emcl_mu_after_train_forward"], **FP32)
    model.eval()
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v_after_train_forward"], **FP32)


def test_gpu_checkpoint_with_fp16_tensors_is_upcast(case, tmp_path):
    state_dict = torch.load(case.checkpoint, weights_only=True)
    for key in case.meta["gpu_checkpoint_fp16_keys"]:
        state_dict[key] = state_dict[key].half()
    torch.save(state_dict, tmp_path / "pytorch_model.bin.best.0")
    tvr.cli.main(["convert", "emcl", str(tmp_path / "pytorch_model.bin.best.0"), str(tmp_path / "out"), *case.cli_args])
    model = EMCLModel.from_pretrained(tmp_path / "out").eval()
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}
    text, video = case.encodings(model)
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v_mixed_fp16"], rtol=1e-2, atol=1e-2)


def test_explicit_em_bases(case, tmp_path):
    inputs_file = FIXTURE_ROOT / case.meta["case"] / "inputs.safetensors"
    args = [arg for arg in case.cli_args if arg not in ("--em-bases-seed", str(case.meta["args"]["seed"]))]
    bases = f"{inputs_file}:emcl_mu_init"
    tvr.cli.main(["convert", "emcl", str(case.checkpoint), str(tmp_path), "--em-bases", bases, *args])
    model = EMCLModel.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(model.em.bases, case.inputs["emcl_mu_init"], rtol=0, atol=0)
    text, video = case.encodings(model)
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v"], **FP32)

    # other bases change the scores; setting the reference's back restores them
    model.set_em_bases(initial_em_bases(model.config.em_num_bases, seed=1234))
    assert not torch.allclose(cosine(model, text, video), case.expected["sim_t2v"], atol=1e-4)
    model.set_em_bases(case.inputs["emcl_mu_init"][0])
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v"], **FP32)


def test_saved_folder_holds_the_bases_and_loads_with_auto_classes(case):
    AutoConfig.register("emcl", EMCLConfig, exist_ok=True)
    AutoModel.register(EMCLConfig, EMCLModel, exist_ok=True)
    saved = load_file(case.output_dir / "model.safetensors")
    torch.testing.assert_close(saved["em.bases"], case.inputs["emcl_mu_init"], rtol=0, atol=0)
    assert json.loads((case.output_dir / "config.json").read_text())["model_type"] == "emcl"
    model = AutoModel.from_pretrained(case.output_dir).eval()
    assert isinstance(model, EMCLModel)
    text, video = case.encodings(model)
    torch.testing.assert_close(cosine(model, text, video), case.expected["sim_t2v"], **FP32)


def test_converter_refuses_unknown_keys_and_bad_options(tmp_path):
    folder = FIXTURE_ROOT / "tiny_w64_default_em"
    state_dict = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state_dict["emcl.mu"] = torch.ones(1, 32)
    torch.save(state_dict, tmp_path / "extra.bin")
    with pytest.raises(ValueError, match=r"unknown keys \['emcl.mu'\]"):
        tvr.cli.main(["convert", "emcl", str(tmp_path / "extra.bin"), str(tmp_path / "out")])
    convert = ["convert", "emcl", str(folder / "pytorch_model.bin"), str(tmp_path / "out")]
    with pytest.raises(ValueError, match="read from the checkpoint"):
        tvr.cli.main([*convert, "--set", "projection_dim=8"])
    with pytest.raises(ValueError, match="key=value"):
        tvr.cli.main([*convert, "--set", "em_beta"])
    with pytest.raises(ValueError, match=r"shape \(1, 32\)"):
        tvr.cli.main([*convert, "--em-bases", "[1, -1]"])
