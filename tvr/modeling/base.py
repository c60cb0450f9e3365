# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""The base every tvr retrieval model on CLIP towers subclasses: init conventions and the model contract.

A method defines `__init__` (with `self.clip = CLIPBackbone(config)`), `encode_video`, `similarity` and
`init_from_clip`; the base gives it `from_clip`, `encode_text`, the input checks, `get_text_features`,
`get_video_features`, `compute_loss`, `forward` and `logit_scale`. The hooks a method may override:

- `_check_num_frames(num_frames)`: the method's limit on frames per video (e.g. a head's positions);
- `batch_similarity(text_encoding, video_encoding, **similarity_kwargs)`: how `forward` and `compute_loss` score a
  batch of pairs (default `similarity`; EMCL scores the batch as one EM block);
- `compute_loss(text_encoding, video_encoding, logits_per_text=None)`: the training loss (default the symmetric
  contrastive loss of `batch_similarity`; EERCF has its own);
- `gather_for_loss`: whether training gathers encodings across processes before `compute_loss`.
"""

from __future__ import annotations

import copy
import os

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, PreTrainedModel
from transformers import initialization as init

from .backbone import CLIPBackbone
from .losses import contrastive_loss
from .outputs import RetrievalLossOutput, RetrievalOutput, TextEncoding, VideoEncoding


class CLIPRetrievalPreTrainedModel(PreTrainedModel):
    """Weight init, loading conventions and the shared half of the model contract for tvr's CLIP-based methods.

    Subclasses set `config: <MethodConfig>` (a config with `text_config`, `vision_config`, `projection_dim`,
    `logit_scale_init_value`, `linear_patch` and usually `temporal_config`) and `base_model_prefix`.
    """

    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings"]
    # Whether training gathers encodings across processes before the loss (the originals do, except tightTransf).
    gather_for_loss: bool = True

    def __init__(self, config):
        super().__init__(config)
        # The temporal / cross layers have no PreTrainedModel of their own to resolve their attention implementation:
        # they follow the model's.
        temporal_config = getattr(config, "temporal_config", None)
        if temporal_config is not None and temporal_config._attn_implementation is None:
            temporal_config._attn_implementation_internal = config._attn_implementation

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # CLIP's own towers are PreTrainedModels and initialise themselves; this covers what tvr adds around them:
        # N(0, initializer_range) Linear/Embedding/Conv, zero biases, LayerNorm 1/0 (as CLIP4Clip's init_weights).
        super()._init_weights(module)
        if isinstance(module, CLIPBackbone):
            init.normal_(module.text_projection.weight, std=module.text_projection.in_features**-0.5)
            init.normal_(module.visual_projection.weight, std=module.visual_projection.in_features**-0.5)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, nn.LSTM):
            # PyTorch's default LSTM init, which the original keeps (transformers' default is Xavier).
            bound = module.hidden_size**-0.5
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)

    # ------------------------------------------------------------------------------------------- construction

    @classmethod
    def from_clip(cls, clip: str | os.PathLike | CLIPModel, **config_overrides) -> "CLIPRetrievalPreTrainedModel":
        """A model initialised from a transformers CLIP checkpoint, the way the method's original initialises it.

        The config takes CLIP's text/vision configs, projection dim and initial logit scale; CLIP weights are copied
        into `self.clip`, then `init_from_clip` initialises what the method adds (see each method's).

        Args:
            clip: a `CLIPModel`, or a Hub id / folder that `CLIPModel.from_pretrained` loads.
            **config_overrides: other fields of the method's config, e.g. `max_frames=12`,
                `temporal_config={"num_hidden_layers": 4}`.
        """
        if not isinstance(clip, CLIPModel):
            clip = CLIPModel.from_pretrained(clip)
        clip_config = clip.config
        config = cls.config_class(
            text_config=copy.deepcopy(clip_config.text_config),
            vision_config=copy.deepcopy(clip_config.vision_config),
            projection_dim=clip_config.projection_dim,
            logit_scale_init_value=float(clip_config.logit_scale_init_value),
            **config_overrides,
        )
        model = cls(config)
        model.clip.load_clip_state_dict(clip.state_dict())
        model.init_from_clip()
        return model

    @torch.no_grad()
    def init_from_clip(self) -> None:
        """Initialise the parts the method adds from the CLIP weights in `self.clip`; here the 3d patch embedding
        (equal to the 2d one), subclasses extend it."""
        self.clip.inflate_patch_embedding()

    @property
    def logit_scale(self) -> nn.Parameter:
        """CLIP's log temperature (`clip.logit_scale`); the training loop clamps it to at most ln(100)."""
        return self.clip.logit_scale

    # ------------------------------------------------------------------------------------------------ inputs

    def _check_num_frames(self, num_frames: int) -> None:
        """Hook: raise if the method cannot take `num_frames` frames per video (default: any number)."""

    def _check_video(self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None) -> torch.Tensor:
        """Validate a video batch where it enters; returns `video_mask`, all ones when not given."""
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                "pixel_values_videos must be (batch_size, num_frames, 3, height, width), "
                f"got shape {tuple(pixel_values_videos.shape)}"
            )
        batch_size, num_frames = pixel_values_videos.shape[:2]
        self._check_num_frames(num_frames)
        image_size = self.config.vision_config.image_size
        if pixel_values_videos.shape[-2:] != (image_size, image_size):
            raise ValueError(
                f"pixel_values_videos frames are {tuple(pixel_values_videos.shape[-2:])}, "
                f"the model expects ({image_size}, {image_size})"
            )
        if video_mask is None:
            return torch.ones(batch_size, num_frames, dtype=torch.long, device=pixel_values_videos.device)
        if video_mask.shape != (batch_size, num_frames):
            raise ValueError(
                f"video_mask must be (batch_size, num_frames) = {(batch_size, num_frames)}, "
                f"got {tuple(video_mask.shape)}"
            )
        return video_mask

    # ---------------------------------------------------------------------------------------------- contract

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TextEncoding:
        """Encode captions.

        Args:
            input_ids: `(batch_size, max_words)` CLIP token ids with an end-of-text token in each row.
            attention_mask: `(batch_size, max_words)`; defaults to all ones (the pooled feature does not depend on
                it: CLIP's causal mask hides the padding after the end-of-text token).

        Returns:
            A `TextEncoding` whose `text_features` `(batch_size, projection_dim)` are the projected end-of-text
            features, not normalised.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch_size, max_words), got shape {tuple(input_ids.shape)}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        text_features = self.clip.encode_text(input_ids, attention_mask).pooler_output
        return TextEncoding(text_features=text_features, attention_mask=attention_mask)

    def encode_video(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> VideoEncoding:
        raise NotImplementedError(f"{type(self).__name__} must define encode_video")

    def similarity(self, text_encoding: TextEncoding, video_encoding: VideoEncoding) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define similarity")

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(batch_size, projection_dim)` L2-normalised end-of-text features (the dot-product / index space)."""
        return F.normalize(self.encode_text(input_ids, attention_mask).text_features, dim=-1)

    def get_video_features(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`(batch_size, projection_dim)` L2-normalised pooled video embeddings (`VideoEncoding.video_embeds`)."""
        return self.encode_video(pixel_values_videos, video_mask).video_embeds

    def batch_similarity(
        self, text_encoding: TextEncoding, video_encoding: VideoEncoding, **similarity_kwargs
    ) -> torch.Tensor:
        """`(num_texts, num_videos)` logits of a batch as `forward` and `compute_loss` score it (default:
        `similarity`)."""
        return self.similarity(text_encoding, video_encoding, **similarity_kwargs)

    def compute_loss(
        self,
        text_encoding: TextEncoding,
        video_encoding: VideoEncoding,
        logits_per_text: torch.Tensor | None = None,
    ) -> RetrievalLossOutput:
        """The training loss on a batch of pairs (text i belongs to video i); the training loop calls it on the
        encodings (gathered across processes when `gather_for_loss`).

        Default: the symmetric contrastive loss of `batch_similarity`. Methods with their own loss override it and
        return a `RetrievalLossOutput` subclass holding the loss's parts.

        Args:
            text_encoding: from `encode_text`, `(batch_size, ...)`.
            video_encoding: from `encode_video`, `(batch_size, ...)`.
            logits_per_text: the batch's `batch_similarity` when the caller already has it (`forward` passes its
                own, so the similarity runs once); methods whose loss is not built on it ignore it.

        Returns:
            A `RetrievalLossOutput`; `.loss` is the scalar to back-propagate.
        """
        if logits_per_text is None:
            logits_per_text = self.batch_similarity(text_encoding, video_encoding)
        return RetrievalLossOutput(loss=contrastive_loss(logits_per_text))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        **similarity_kwargs,
    ) -> RetrievalOutput:
        """Score a batch of captions against a batch of videos (caption i belongs to video i for the loss).

        Args:
            input_ids: `(batch_size, max_words)`.
            attention_mask: `(batch_size, max_words)`.
            pixel_values_videos: `(batch_size, num_frames, 3, image_size, image_size)`.
            video_mask: `(batch_size, num_frames)`.
            return_loss: add `compute_loss`'s loss (`loss`; what `compute_loss` returned in `loss_output`).
            **similarity_kwargs: passed to `batch_similarity` (e.g. EERCF's `rerank_top_k`).
        """
        if pixel_values_videos is None:
            raise ValueError("forward needs pixel_values_videos; use encode_text for captions alone")
        text_encoding = self.encode_text(input_ids, attention_mask)
        video_encoding = self.encode_video(pixel_values_videos, video_mask)
        logits_per_text = self.batch_similarity(text_encoding, video_encoding, **similarity_kwargs)
        loss_output = self.compute_loss(text_encoding, video_encoding, logits_per_text) if return_loss else None
        return RetrievalOutput(
            loss=loss_output.loss if loss_output is not None else None,
            logits_per_text=logits_per_text,
            logits_per_video=logits_per_text.t(),
            text_embeds=F.normalize(text_encoding.text_features, dim=-1),
            video_embeds=video_encoding.video_embeds,
            text_encoding=text_encoding,
            video_encoding=video_encoding,
            loss_output=loss_output,
        )


__all__ = ["CLIPRetrievalPreTrainedModel"]
