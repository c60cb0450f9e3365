# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""InternVideo (v1) retrieval on a transformers CLIP tower: CLIP-EVL's global temporal branch over the frames.

Reference: github.com/OpenGVLab/InternVideo @ 3965eef, `InternVideo1/Downstream/Video-Text-Retrieval` (the `--clip_evl`
path every InternVideo script runs: `modules/clip_evl/model.py` + `evl_utils/clip_vit_only_global.py`). A converted
original checkpoint gives the original similarity matrix (fp32, atol 1e-4; tests/test_convert_internvideo.py).

The backbone encodes frames independently (`ImageTextTower.encode_frames`). The branch reads the outputs of the backbone
layers `config.extractor_layers`; for each, a depthwise 3x3x3 convolution over (time, height, width) of the patch tokens
is added to them (a copy: the backbone does not see it), and one learnt query, carried from layer to layer, attends to
every token of every frame (a cross-attention + MLP layer). The video feature is
`(1 - sigmoid(balance)) * query + sigmoid(balance) * mean over frames of the last layer's class token`, then the tower's
post-LayerNorm and visual projection (the original's `visual_ln_post`, `visual_proj`). One vector per video.

Differences from the reference, all deliberate:
- the original feeds zero-padded frames through the branch (its `T` is always `max_frames`); so does this model by
  default. `config.mask_padded_frames=True` masks them instead: padded frames are left out of the attention and of the
  class-token mean and enter the convolution as zeros, so a video gets the embedding it gets without padding;
- a video without valid frames gets the zero embedding (similarity 0) instead of NaN;
- the model accepts any number of frames and captions up to the text context (the original: exactly `max_frames`
  frames and `max_words == context_length` tokens).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ...modeling.base import ImageTextRetrievalPreTrainedModel
from ...modeling.outputs import TextEncoding, VideoEncoding
from ...modeling.pooling import masked_mean
from ...modeling.towers import ImageTextTower
from .configuration import InternVideoConfig


@dataclass
class InternVideoVideoEncoding(VideoEncoding):
    """What `InternVideoModel.encode_video` returns: `VideoEncoding` plus

    Args:
        video_features (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            The projected video feature, not normalised (the original's `get_visual_output`).

    `frame_features` are the frames' own class tokens after the post-LayerNorm and projection (the original's per-frame
    features of its token-wise `wti` mode), `video_embeds` the L2-normalised `video_features`.
    """

    video_features: torch.FloatTensor | None = None


class InternVideoExtractorLayer(nn.Module):
    """One layer of the branch (the original's `Extractor`): the query attends to a layer's tokens, then an MLP.

    `query = query + attn(LN_q(query), LN_c(tokens))`, `query = query + MLP(LN_m(query))` with QuickGELU; standard
    softmax(q k^T / sqrt(d)) attention, no dropout.
    """

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, layer_norm_eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.query_norm = nn.LayerNorm(width, eps=layer_norm_eps)  # ln_1
        self.context_norm = nn.LayerNorm(width, eps=layer_norm_eps)  # ln_3
        self.q_proj = nn.Linear(width, width)
        self.k_proj = nn.Linear(width, width)
        self.v_proj = nn.Linear(width, width)
        self.out_proj = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width, eps=layer_norm_eps)  # ln_2
        self.fc1 = nn.Linear(width, round(mlp_ratio * width))
        self.fc2 = nn.Linear(round(mlp_ratio * width), width)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        """`(batch, seq, width)` -> `(batch, heads, seq, head_dim)`."""
        return states.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(
        self, query: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`query` `(batch_size, 1, width)`, `tokens` `(batch_size, num_tokens, width)`, `token_mask`
        `(batch_size, num_tokens)` bool (True: attend; `None`: every token) -> the updated `query`."""
        context = self.context_norm(tokens)
        q = self._heads(self.q_proj(self.query_norm(query)))
        k, v = self._heads(self.k_proj(context)), self._heads(self.v_proj(context))
        mask = token_mask[:, None, None, :] if token_mask is not None else None
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        query = query + self.out_proj(attended.transpose(1, 2).flatten(2))
        hidden = self.fc1(self.mlp_norm(query))
        return query + self.fc2(hidden * torch.sigmoid(1.702 * hidden))


class InternVideoTemporalBranch(nn.Module):
    """CLIP-EVL's global temporal branch (UniFormerV2's global blocks): position convolutions, extractor layers, the
    learnt query and the `balance` blend with the frames' mean class token.

    Original names: `temporal_cls_token` = `query`, `dpe` = `position_convs`, `dec` = `layers`, `balance`.
    """

    def __init__(self, config: InternVideoConfig):
        super().__init__()
        vision = config.vision_config
        width = vision.hidden_size
        self.grid_size = vision.image_size // vision.patch_size
        self.query = nn.Parameter(torch.zeros(width))
        self.position_convs = nn.ModuleList(
            nn.Conv3d(width, width, kernel_size=3, padding=1, groups=width) for _ in config.extractor_layers
        )
        self.layers = nn.ModuleList(
            InternVideoExtractorLayer(width, config.extractor_heads, config.extractor_mlp_ratio, vision.layer_norm_eps)
            for _ in config.extractor_layers
        )
        self.balance = nn.Parameter(torch.zeros(width))

    def forward(
        self,
        layer_outputs: Sequence[torch.Tensor],
        last_hidden_state: torch.Tensor,
        num_frames: int,
        frame_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fuse the frames of each video into one vector.

        Args:
            layer_outputs: the outputs of the `extractor_layers`, each `(batch_size * num_frames, 1 + num_patches,
                width)`, frames of one video contiguous.
            last_hidden_state: the backbone's last layer output, same shape.
            num_frames: frames per video.
            frame_mask: `(batch_size, num_frames)`, 1 for real frames, to mask padded frames; `None`: every frame
                counts (the original).

        Returns:
            `(batch_size, width)`, before the post-LayerNorm and projection.
        """
        num_tokens, width = last_hidden_state.shape[1:]
        batch_size = last_hidden_state.shape[0] // num_frames
        grid = self.grid_size
        token_mask = None
        if frame_mask is not None:
            frame_mask = frame_mask.bool()
            # a video without valid frames attends to all (its embedding is zeroed by the model): no NaN
            frame_mask = frame_mask | ~frame_mask.any(dim=1, keepdim=True)
            token_mask = frame_mask[:, :, None].expand(-1, -1, num_tokens).flatten(1)
        query = self.query.expand(batch_size, 1, width)
        for convolution, layer, hidden_states in zip(self.position_convs, self.layers, layer_outputs):
            tokens = hidden_states.view(batch_size, num_frames, num_tokens, width)
            patches = tokens[:, :, 1:]
            volume = patches.permute(0, 3, 1, 2).reshape(batch_size, width, num_frames, grid, grid)
            if frame_mask is not None:
                volume = volume * frame_mask[:, None, :, None, None].to(volume.dtype)
            positions = convolution(volume).flatten(3).permute(0, 2, 3, 1)  # (batch, frames, patches, width)
            tokens = torch.cat([tokens[:, :, :1], patches + positions], dim=2).flatten(1, 2)
            query = layer(query, tokens, token_mask)
        class_tokens = last_hidden_state.view(batch_size, num_frames, num_tokens, width)[:, :, 0]
        if frame_mask is None:
            frames_mean = class_tokens.mean(dim=1)
        else:
            frames_mean = masked_mean(class_tokens, frame_mask)
        weight = torch.sigmoid(self.balance)
        return (1 - weight) * query[:, 0] + weight * frames_mean


class InternVideoPreTrainedModel(ImageTextRetrievalPreTrainedModel):
    """Weight init and loading conventions for InternVideo (those of `ImageTextRetrievalPreTrainedModel`; the branch is
    initialised as the original's: zero query, balance and convolution biases, Xavier q/k/v and first MLP layer, zero
    output projections, so a new branch starts by returning `sigmoid(0) * mean class token`)."""

    config: InternVideoConfig
    base_model_prefix = "internvideo"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # (the branch initialises its layers: transformers skips modules without parameters of their own)
        if isinstance(module, InternVideoTemporalBranch):
            init.zeros_(module.query)
            init.zeros_(module.balance)
            for convolution in module.position_convs:
                init.zeros_(convolution.bias)
            for layer in module.layers:
                # the original's fused in_proj (3 * width, width) is Xavier-initialised as one matrix
                width = layer.q_proj.in_features
                bound = (6.0 / (width + 3 * width)) ** 0.5
                for projection in (layer.q_proj, layer.k_proj, layer.v_proj):
                    init.uniform_(projection.weight, -bound, bound)
                    init.zeros_(projection.bias)
                init.xavier_uniform_(layer.fc1.weight)
                for projection in (layer.out_proj, layer.fc2):
                    init.zeros_(projection.weight)
                    init.zeros_(projection.bias)


class InternVideoModel(InternVideoPreTrainedModel):
    """InternVideo retrieval: a CLIP tower (`self.clip`) + the CLIP-EVL temporal branch (`self.temporal`), scored by
    the tower's `exp(logit_scale) * cosine` between the caption's end-of-text feature and the video vector.

    Example:

    ```python
    >>> model = InternVideoModel.from_pretrained("converted/internvideo-msrvtt")  # tvr convert internvideo ...
    >>> text = model.encode_text(input_ids, attention_mask)
    >>> video = model.encode_video(pixel_values_videos, video_mask)
    >>> logits = model.similarity(text, video)  # (num_texts, num_videos)
    ```
    """

    # Metrics the evaluation reports beside the plain ones by default: the original logs DSL after every epoch (its
    # released checkpoints' names say "dsl"), while it selects checkpoints by the plain t2v R@1.
    default_postprocessing = ("dsl",)

    def __init__(self, config: InternVideoConfig):
        super().__init__(config)
        self.clip = ImageTextTower(config)
        self.temporal = InternVideoTemporalBranch(config)
        self.post_init()

    @property
    def pretrained_modules(self) -> tuple[str, ...]:
        """The tower, and the branch when it holds pretrained weights (`config.temporal_branch_pretrained`: converted
        InternVideo checkpoints, whose branch the original fine-tunes at `lr * coef_lr` like every `clip.*` weight)."""
        return ("clip", "temporal") if self.config.temporal_branch_pretrained else ("clip",)

    def freeze_pretrained_layers(self, freeze_layer_num: int) -> list[str]:
        """Freeze as the original's `--freeze_layer_num` does: the tower's embeddings and layers below
        `freeze_layer_num` (`-1`: nothing), and, because the original's name checks miss them, the vision post-LayerNorm
        and projection (`visual_ln_post`, `visual_proj`) and the branch's query and balance. Returns the frozen
        names."""
        frozen = super().freeze_pretrained_layers(freeze_layer_num)
        if freeze_layer_num < 0:
            return frozen
        for name, parameter in self.named_parameters():
            if name.startswith(("clip.visual_projection.", "clip.vision_model.post_layernorm.")) or name in (
                "temporal.query",
                "temporal.balance",
            ):
                parameter.requires_grad_(False)
                frozen.append(name)
        return frozen

    def encode_video(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> InternVideoVideoEncoding:
        """Encode videos.

        Args:
            pixel_values_videos: `(batch_size, num_frames, 3, image_size, image_size)` normalised frames, zeros on
                padded frames.
            video_mask: `(batch_size, num_frames)`, 1 for real frames; defaults to all ones. Padded frames enter the
                branch unless `config.mask_padded_frames`.

        Returns:
            An `InternVideoVideoEncoding`.
        """
        video_mask = self._check_video(pixel_values_videos, video_mask)
        frames = self.clip.encode_frames(pixel_values_videos, output_layers=self.config.extractor_layers)
        fused = self.temporal(
            frames.layer_outputs,
            frames.last_hidden_state,
            pixel_values_videos.shape[1],
            video_mask if self.config.mask_padded_frames else None,
        )
        video_features = self.clip.visual_projection(self.clip.vision_model.post_layernorm(fused))
        has_frames = video_mask.any(dim=1, keepdim=True).to(video_features.dtype)
        return InternVideoVideoEncoding(
            frame_features=frames.pooler_output,
            video_mask=video_mask,
            video_embeds=F.normalize(video_features, dim=-1) * has_frames,
            video_features=video_features,
        )

    @property
    def scores_by_embedding_product(self) -> bool:
        """`similarity` is `scale * cos(text_features, video_embeds)`."""
        return True

    def similarity(self, text_encoding: TextEncoding, video_encoding: VideoEncoding) -> torch.Tensor:
        """`(num_texts, num_videos)` logits: `exp(logit_scale) * cosine(text, video)`."""
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        return self.clip.scale_logits(text_embeds @ video_encoding.video_embeds.t())


__all__ = ["InternVideoModel", "InternVideoPreTrainedModel", "InternVideoVideoEncoding"]
