"""Tiny random CLIP4Clip configs, models and inputs for tests (`from model_testers import tiny_clip4clip_config`).

pytest puts `tests/` on `sys.path` (rootdir-relative "prepend" import mode, no `__init__.py`), so any test module
can import this file.
"""

from __future__ import annotations

import torch

from tvr import CLIP4ClipConfig, CLIP4ClipModel

VOCAB_SIZE = 50  # end-of-text = 49 (the largest id, as in CLIP's BPE), start-of-text = 48, padding = 0
EOT_ID = VOCAB_SIZE - 1
SOT_ID = VOCAB_SIZE - 2
IMAGE_SIZE = 16


def tiny_text_config(**overrides) -> dict:
    """A 2-layer, 32-wide CLIP text tower with a 50-token vocabulary and 16 positions."""
    return {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "bos_token_id": SOT_ID,
        "eos_token_id": EOT_ID,
        "pad_token_id": 0,
        **overrides,
    }


def tiny_vision_config(**overrides) -> dict:
    """A 2-layer, 32-wide ViT on 16x16 frames with 8x8 patches (4 patches + CLS)."""
    return {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": 8,
        **overrides,
    }


def tiny_config_options(**overrides) -> dict:
    """Config fields every tiny tvr method config shares: tiny towers, projection 32, one temporal layer."""
    return {
        "text_config": tiny_text_config(),
        "vision_config": tiny_vision_config(),
        "temporal_config": {"num_hidden_layers": 1},
        "projection_dim": 32,
        "max_frames": 4,
        "max_words": 8,
        **overrides,
    }


def tiny_clip4clip_config(sim_header: str = "meanP", linear_patch: str = "2d", **overrides) -> CLIP4ClipConfig:
    """A tiny random-weight CLIP4Clip config (projection 32, one temporal layer); builds in milliseconds."""
    return CLIP4ClipConfig(sim_header=sim_header, linear_patch=linear_patch, **tiny_config_options(**overrides))


def tiny_clip4clip_model(sim_header: str = "meanP", linear_patch: str = "2d", seed: int = 0, **overrides):
    """A `CLIP4ClipModel` on `tiny_clip4clip_config`, seeded, in eval mode."""
    torch.manual_seed(seed)
    return CLIP4ClipModel(tiny_clip4clip_config(sim_header, linear_patch, **overrides)).eval()


def tiny_inputs(batch_size: int = 3, num_frames: int = 4, max_words: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    """Model inputs with varied caption lengths and video lengths (the last video has one valid frame).

    Returns `input_ids`/`attention_mask` `(batch_size, max_words)` ([SOT, tokens, EOT, 0-padding]),
    `pixel_values_videos` `(batch_size, num_frames, 3, 16, 16)` (zeros on padded frames) and
    `video_mask` `(batch_size, num_frames)`.
    """
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.zeros(batch_size, max_words, dtype=torch.long)
    attention_mask = torch.zeros(batch_size, max_words, dtype=torch.long)
    video_mask = torch.zeros(batch_size, num_frames, dtype=torch.long)
    for row in range(batch_size):
        length = max(3, max_words - 2 * row)
        input_ids[row, :length] = torch.randint(1, SOT_ID, (length,), generator=generator)
        input_ids[row, 0], input_ids[row, length - 1] = SOT_ID, EOT_ID
        attention_mask[row, :length] = 1
        video_mask[row, : max(1, num_frames - 3 * row)] = 1
    pixel_values_videos = torch.randn(batch_size, num_frames, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    pixel_values_videos = pixel_values_videos * video_mask[:, :, None, None, None]
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "pixel_values_videos": pixel_values_videos,
        "video_mask": video_mask,
    }


# ------------------------------------------------------------------------------------------------ image-text towers

TOWER_TYPES = ("clip", "metaclip_2", "siglip")


def tiny_image_text_model(tower_type: str, seed: int = 0):
    """A tiny random transformers image-text model of `tower_type` (`CLIPModel`, `MetaClip2Model`, `SiglipModel`):
    the `tiny_text_config` / `tiny_vision_config` towers, every width 32 (so temporal layers can copy text layers)."""
    from transformers import CONFIG_MAPPING, AutoModel

    text_config, vision_config = tiny_text_config(), tiny_vision_config()
    extra = {"projection_dim": 32}
    if tower_type == "siglip":
        text_config["projection_size"] = 32  # SigLIP's text head maps into the vision width
        extra = {}
    config = CONFIG_MAPPING[tower_type](text_config=text_config, vision_config=vision_config, **extra)
    torch.manual_seed(seed)
    return AutoModel.from_config(config).eval()


# ----------------------------------------------------------------------------------------------- model testers


class RetrievalModelTester:
    """One tester per tvr model class: a tiny config and inputs, used by tvr's own tests and by transformers'
    `ModelTesterMixin` (`tests/transformers_common`), which read `prepare_config_and_inputs_for_common` and the
    attributes below."""

    batch_size = 3
    num_frames = 4
    seq_length = 8  # max_words
    num_hidden_layers = 2  # of each tower (the layers get_*_features report)
    hidden_size = 32
    is_training = True

    def __init__(self, parent=None, model_class=None, text_config=None, vision_config=None, **config_overrides):
        """`text_config` / `vision_config`: fields that override `tiny_text_config` / `tiny_vision_config`; the
        other keyword arguments override the method config's fields (`tiny_config_options`)."""
        from tvr import CLIP4ClipModel

        self.parent = parent
        self.model_class = model_class or CLIP4ClipModel
        self.config_overrides = {
            "text_config": tiny_text_config(**(text_config or {})),
            "vision_config": tiny_vision_config(**(vision_config or {})),
            **config_overrides,
        }

    def get_config(self, **overrides):
        return self.model_class.config_class(**tiny_config_options(**{**self.config_overrides, **overrides}))

    def prepare_inputs(self, batch_size: int | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
        return tiny_inputs(batch_size or self.batch_size, self.num_frames, self.seq_length, seed=seed)

    def prepare_config_and_inputs_for_common(self):
        return self.get_config(), {**self.prepare_inputs(), "return_loss": True}

    def model(self, seed: int = 0, **overrides):
        """The tester's model (config fields overridden by `overrides`), seeded, in eval mode."""
        torch.manual_seed(seed)
        return self.model_class(self.get_config(**overrides)).eval()


def model_testers() -> dict[str, RetrievalModelTester]:
    """A tester for every tvr model class and configuration that changes its parameters: each CLIP4Clip head
    (and the 3d patch), EMCL, EERCF, InternVideo, DAVRL (the base model, without its adapter)."""
    from tvr import CLIP4ClipModel, DualAttentionModel, EERCFModel, EMCLModel, InternVideoModel

    return {
        "clip4clip_meanP": RetrievalModelTester(model_class=CLIP4ClipModel, sim_header="meanP"),
        "clip4clip_seqLSTM": RetrievalModelTester(model_class=CLIP4ClipModel, sim_header="seqLSTM"),
        "clip4clip_seqTransf": RetrievalModelTester(model_class=CLIP4ClipModel, sim_header="seqTransf"),
        "clip4clip_tightTransf": RetrievalModelTester(model_class=CLIP4ClipModel, sim_header="tightTransf"),
        "clip4clip_seqTransf_3d": RetrievalModelTester(
            model_class=CLIP4ClipModel, sim_header="seqTransf", linear_patch="3d"
        ),
        "emcl": RetrievalModelTester(model_class=EMCLModel, em_num_bases=4, em_num_stages=2),
        "eercf": RetrievalModelTester(model_class=EERCFModel),
        "internvideo": RetrievalModelTester(model_class=InternVideoModel, extractor_layers=[0, 1]),
        "dual_attention": RetrievalModelTester(
            model_class=DualAttentionModel, vision_config={"patch_size": 4}, num_global_tokens=3,
            lora_rank=4, sel_layers=[1], r_drop=5, seg_layers=[], seg_num=[], frame_per_seg=[],
        ),
    }
