# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""DAVRL (Dual-Attention Video Representation Learning, github.com/bzy-source/DAVRL) on a transformers CLIP tower.

A frozen CLIP whose only trained weights are LoRA adapters on the fused q/k/v projection of every attention of both
towers (the original's `TVPt_LoRA`: one shared down-projection for q, k and v, no scaling). The adapters are stock
`peft` LoRA on `qkv_proj` (`tvr.peft`); this model knows nothing about them, it only exposes one fused
`self_attn.qkv_proj` per attention (`FusedQKVAttention`) and the global tokens as a module (`global_tokens`).

The video side is re-wired as in the original's `visual_prompt` vision transformer:

- `num_global_tokens` video tokens are prepended once per video;
- every layer runs two attentions with the same weights: a *local* one inside each frame (later: segment), and a
  *global* one where the global tokens attend to themselves and to every token of the video;
- before each of `sel_layers`, each frame keeps its `num_patches - r_drop` most important patches by
  `alpha * global map + (1 - alpha) * local map` (head-averaged attention of the previous layer: global token 0's
  row, the CLS row), in importance order;
- before each of `seg_layers`, units are regrouped into `seg_num` *strided* segments (frame t joins segment
  `t mod seg_num`), so the local attention becomes spatio-temporal;
- the video embedding is global token 0 after the post-LayerNorm and the projection (`visual_output_type`).

The text side is CLIP's text transformer with the fused attention. A converted original checkpoint gives the
original's similarities (fp32, atol 1e-4; tests/test_dual_attention.py).
"""


import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.output_capturing import install_output_capuring_hook

from ...modeling.base import ImageTextRetrievalPreTrainedModel
from ...modeling.outputs import TextEncoding, VideoEncoding
from ...modeling.towers import ImageTextTower
from .configuration import DualAttentionConfig


def _eager_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Softmax attention on `(batch, heads, tokens, head_dim)` (the towers' eager attention)."""
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class FusedQKVAttention(nn.Module):
    """Multi-head attention with one fused input projection `qkv_proj` (`(3 * width, width)`, rows q | k | v), as
    OpenAI CLIP's `in_proj_weight`; a drop-in for the tower's attention (same call and outputs).

    One `nn.Linear` for q, k and v is what makes stock `peft` LoRA on `qkv_proj` the original's shared-A adapter.
    Loading a state dict with separate `q_proj` / `k_proj` / `v_proj` (a transformers CLIP) fuses them.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False
        self.qkv_proj = nn.Linear(self.embed_dim, 3 * self.embed_dim)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)
        self._register_load_state_dict_pre_hook(self._fuse_separate_projections)

    @staticmethod
    def _fuse_separate_projections(state_dict, prefix, *args) -> None:
        for suffix in ("weight", "bias"):
            names = [f"{prefix}{part}_proj.{suffix}" for part in ("q", "k", "v")]
            if all(name in state_dict for name in names):
                state_dict[f"{prefix}qkv_proj.{suffix}"] = torch.cat([state_dict.pop(name) for name in names])

    def split_heads(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(..., tokens, width)` -> queries, keys, values `(..., heads, tokens, head_dim)` through `qkv_proj`."""
        qkv = self.qkv_proj(hidden_states).unflatten(-1, (3, self.num_heads, self.head_dim))
        return tuple(qkv.select(-3, index).transpose(-3, -2) for index in range(3))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """`(batch, tokens, width)` -> `(attn_output, attn_weights)`, as the tower's attention."""
        input_shape = hidden_states.shape[:-1]
        queries, keys, values = self.split_heads(hidden_states)
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, _eager_attention)
        attn_output, attn_weights = attention_interface(
            self, queries, keys, values, attention_mask, scaling=self.scale,
            dropout=0.0 if not self.training else self.dropout, **kwargs,
        )
        return self.out_proj(attn_output.reshape(*input_shape, -1).contiguous()), attn_weights


class GlobalTokens(nn.Module):
    """The video tokens prepended once per video, `(1, num_tokens, width)`; `forward(batch_size)` expands them.

    A module with a `forward` (not a bare parameter) so that `peft`'s `modules_to_save=["global_tokens"]` can train
    them or carry them in an adapter.
    """

    def __init__(self, num_tokens: int, width: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.zeros(1, num_tokens, width))

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embeddings.expand(batch_size, -1, -1)


@dataclass
class DualAttentionVideoEncoding(VideoEncoding):
    """`VideoEncoding` plus `video_features` `(batch_size, projection_dim)`: the video feature before normalising
    (the original's `video_feat`)."""

    video_features: torch.FloatTensor | None = None


class DualAttentionPreTrainedModel(ImageTextRetrievalPreTrainedModel):
    """Weight init and loading conventions for DAVRL."""

    config: DualAttentionConfig
    base_model_prefix = "dual_attention"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, FusedQKVAttention):
            # the tower's own init of separate q/k/v/out projections (CLIP's)
            layers = module.config.num_hidden_layers
            init.normal_(module.qkv_proj.weight, std=module.embed_dim**-0.5 * (2 * layers) ** -0.5)
            init.normal_(module.out_proj.weight, std=module.embed_dim**-0.5)
            init.zeros_(module.qkv_proj.bias)
            init.zeros_(module.out_proj.bias)
        elif isinstance(module, GlobalTokens):
            # the original's prompt init: U(-v, v), v = sqrt(6 / (3 * patch^2 + width))
            patch = self.config.vision_config.patch_size
            bound = math.sqrt(6.0 / (3 * patch * patch + module.embeddings.shape[-1]))
            init.uniform_(module.embeddings, -bound, bound)


class DualAttentionModel(DualAttentionPreTrainedModel):
    """DAVRL: frozen CLIP towers with fused-qkv attentions (`self.clip`), global video tokens (`self.global_tokens`)
    and the dual-attention vision forward. Train it through `peft` (`tvr.methods.dual_attention.get_dual_attention_peft_model`).

    Example:

    ```python
    >>> from tvr import DualAttentionModel
    >>> from tvr.methods.dual_attention import get_dual_attention_peft_model
    >>> model = DualAttentionModel.from_clip("openai/clip-vit-base-patch32")
    >>> peft_model = get_dual_attention_peft_model(model)  # LoRA r=8 on every qkv_proj: 491,520 trainable
    >>> out = peft_model(input_ids=ids, attention_mask=mask, pixel_values_videos=videos, return_loss=True)
    ```
    """

    def __init__(self, config: DualAttentionConfig):
        super().__init__(config)
        self.clip = ImageTextTower(config)
        for tower in (self.clip.text_model, self.clip.vision_model):
            for layer in tower.encoder.layers:
                layer.self_attn = FusedQKVAttention(tower.config)
        # the text model records `output_attentions` from these as from the attentions they replace (its
        # `_can_record_outputs` names that class); the vision forward has its own token layout and records none
        for layer in self.clip.text_model.encoder.layers:
            install_output_capuring_hook(layer.self_attn, "attentions", index=1)
        self.global_tokens = GlobalTokens(config.num_global_tokens, config.vision_config.hidden_size)
        self.post_init()

    # ------------------------------------------------------------------------------------------------ video

    def _check_num_frames(self, num_frames: int) -> None:
        if num_frames != self.config.max_frames:
            raise ValueError(f"DAVRL encodes exactly max_frames = {self.config.max_frames} frames per video (its "
                             f"segments are built for them; pad shorter videos), got {num_frames}")

    def encode_video(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> VideoEncoding:
        """Encode videos.

        Args:
            pixel_values_videos: `(batch_size, max_frames, 3, image_size, image_size)` normalised frames.
            video_mask: `(batch_size, max_frames)`; kept in the encoding but not used, as in the original (padded
                frames are encoded like real ones).

        Returns:
            A `VideoEncoding` whose `video_embeds` `(batch_size, projection_dim)` is the L2-normalised video feature
            (`video_features`: the same, not normalised).
        """
        video_mask = self._check_video(pixel_values_videos, video_mask)
        video_features = self.video_features(pixel_values_videos)
        return DualAttentionVideoEncoding(
            video_mask=video_mask, video_embeds=F.normalize(video_features, dim=-1), video_features=video_features
        )

    def video_features(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """The dual-attention vision forward: `(batch_size, max_frames, 3, H, W)` -> `(batch_size, projection_dim)`
        projected video features, not normalised."""
        config = self.config
        batch_size, num_frames = pixel_values_videos.shape[:2]
        frames = self.clip.embed_frames(pixel_values_videos)  # (batch * frames, 1 + patches, width)
        units = frames.view(batch_size, num_frames, *frames.shape[1:])  # (batch, units, tokens per unit, width)
        global_tokens = self.global_tokens(batch_size)
        sel_layers, seg_layers = set(config.sel_layers), dict(zip(config.seg_layers, config.seg_num))
        maps = None
        for index, layer in enumerate(self.clip.vision_layers):
            if index in sel_layers:
                units = self._select_patches(units, *maps)
            if index in seg_layers:
                units = self._regroup(units, num_frames // units.shape[1], seg_layers[index])
            run_layer = partial(self._dual_attention_layer, layer, need_maps=index + 1 in sel_layers)
            if layer.gradient_checkpointing and self.training:  # activation_checkpointing_enable() marks the layers
                global_tokens, units, maps = layer._gradient_checkpointing_func(run_layer, global_tokens, units)
            else:
                global_tokens, units, maps = run_layer(global_tokens, units)
        tokens = self.clip.project_tokens(global_tokens)  # (batch, global, projection)
        if config.visual_output_type == "global_token0":
            return tokens[:, 0]
        if config.visual_output_type == "average_global_token":
            return tokens.mean(dim=1)
        first_tokens = self.clip.project_tokens(units[:, :, 0])  # each final unit's first token
        if config.visual_output_type == "average_frame_cls_token":
            return first_tokens.mean(dim=1)
        return torch.cat([tokens, first_tokens], dim=1).mean(dim=1)

    def _dual_attention_layer(self, layer: nn.Module, global_tokens: torch.Tensor, units: torch.Tensor,
                              need_maps: bool = False):
        """One encoder layer with the local (per unit) and the global attention sharing its weights.

        Args:
            layer: a tower encoder layer (`layer_norm1`, `self_attn` a `FusedQKVAttention`, `layer_norm2`, `mlp`).
            global_tokens: `(batch, num_global, width)`.
            units: `(batch, num_units, unit_tokens, width)`; a unit is a frame, later a segment.
            need_maps: also return the head-averaged maps that the next layer's patch selection reads.

        Returns:
            `(global_tokens, units, maps)`; `maps` is `(local_cls_row, global_row0)` or `None`:
            `(batch, num_units, unit_tokens)` CLS-row probabilities of each unit and `(batch, num_global +
            num_units * unit_tokens)` global token 0's probabilities over [global tokens, units flattened].
        """
        attention = layer.self_attn
        batch, num_units, unit_tokens, width = units.shape
        num_global = global_tokens.shape[1]
        hidden = torch.cat([global_tokens, units.flatten(1, 2)], dim=1)
        queries, keys, values = attention.split_heads(layer.layer_norm1(hidden))  # (batch, heads, tokens, head_dim)

        def per_unit(tensor):  # (batch, heads, units * unit_tokens, d) -> (batch * units, heads, unit_tokens, d)
            tensor = tensor[:, :, num_global:].unflatten(2, (num_units, unit_tokens))
            return tensor.permute(0, 2, 1, 3, 4).flatten(0, 1)

        global_queries = queries[:, :, :num_global]
        if need_maps:
            local_out, local_probs = _eager_attention(attention, per_unit(queries), per_unit(keys), per_unit(values),
                                                      None, attention.scale)
            global_out, global_probs = _eager_attention(attention, global_queries, keys, values, None,
                                                        attention.scale)
            maps = (local_probs.mean(dim=1)[:, 0].view(batch, num_units, unit_tokens), global_probs.mean(dim=1)[:, 0])
        else:
            local_out = F.scaled_dot_product_attention(per_unit(queries), per_unit(keys), per_unit(values),
                                                       scale=attention.scale).transpose(1, 2)
            global_out = F.scaled_dot_product_attention(global_queries, keys, values,
                                                        scale=attention.scale).transpose(1, 2)
            maps = None
        attended = torch.cat([global_out.reshape(batch, num_global, width),
                              local_out.reshape(batch, num_units * unit_tokens, width)], dim=1)
        hidden = hidden + attention.out_proj(attended)
        hidden = hidden + layer.mlp(layer.layer_norm2(hidden))
        return hidden[:, :num_global], hidden[:, num_global:].view(batch, num_units, unit_tokens, width), maps

    def _select_patches(self, frames: torch.Tensor, local_cls_row: torch.Tensor, global_row0: torch.Tensor):
        """Keep each frame's CLS and its `patches - r_drop` most important patches, in importance order.

        Args:
            frames: `(batch, num_frames, 1 + patches, width)`.
            local_cls_row: `(batch, num_frames, 1 + patches)` the CLS row of each frame's local attention.
            global_row0: `(batch, num_global + num_frames * (1 + patches))` global token 0's attention.
        """
        batch, num_frames, frame_tokens, width = frames.shape
        num_global = global_row0.shape[1] - num_frames * frame_tokens
        global_score = global_row0[:, num_global:].view(batch, num_frames, frame_tokens)[..., 1:]
        importance = self.config.alpha * global_score + (1 - self.config.alpha) * local_cls_row[..., 1:]
        order = torch.argsort(importance, dim=-1, descending=True)[..., : frame_tokens - 1 - self.config.r_drop]
        patches = torch.gather(frames[:, :, 1:], 2, order.unsqueeze(-1).expand(-1, -1, -1, width))
        return torch.cat([frames[:, :, :1], patches], dim=2)

    @staticmethod
    def _regroup(units: torch.Tensor, cls_per_unit: int, num_segments: int) -> torch.Tensor:
        """Regroup units into `num_segments` strided segments, exactly as the original's token-major reshape does.

        Unit u joins segment `u mod num_segments`; a segment holds [the CLS tokens, then the patches] of its units,
        each ordered token-major (token n of every unit in turn, units ascending).

        Args:
            units: `(batch, num_units, cls_per_unit + patches_per_unit, width)`.
        """
        batch, num_units, unit_tokens, width = units.shape
        per_segment = num_units // num_segments

        def regroup(part):  # (batch, units, n, width) -> (batch, segments, n * per_segment, width)
            n = part.shape[2]
            part = part.reshape(batch, per_segment, num_segments, n, width)  # unit u = i * num_segments + s
            return part.permute(0, 2, 3, 1, 4).reshape(batch, num_segments, n * per_segment, width)

        return torch.cat([regroup(units[:, :, :cls_per_unit]), regroup(units[:, :, cls_per_unit:])], dim=2)

    @property
    def scores_by_embedding_product(self) -> bool:
        """`similarity` is `scale * cos(text_features, video_embeds)`."""
        return True

    def similarity(self, text_encoding: TextEncoding, video_encoding: VideoEncoding) -> torch.Tensor:
        """`(num_texts, num_videos)` logits: `exp(logit_scale) * cosine` of text and video features."""
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        return self.clip.scale_logits(text_embeds @ video_encoding.video_embeds.t())


__all__ = ["DualAttentionModel", "DualAttentionPreTrainedModel", "DualAttentionVideoEncoding", "FusedQKVAttention",
           "GlobalTokens"]
