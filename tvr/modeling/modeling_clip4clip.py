# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""CLIP4Clip (Luo et al., 2021) on transformers' CLIP: text-to-video retrieval with four similarity heads.

Reference: github.com/ArrowLuo/CLIP4Clip. A converted original checkpoint gives the original similarity matrix
(fp32, atol 1e-5; see tests/test_clip4clip.py). Differences from the reference, all deliberate:
- the model runs in the dtype it is loaded in (fp32 by default); the original keeps CLIP's linear weights in fp16;
- a video without valid frames gets similarity 0 instead of NaN (loose heads) and never NaN in attention;
- a seqLSTM checkpoint's unused `frame_position_embeddings` is dropped.
"""

import copy
import os

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, PreTrainedModel
from transformers import initialization as init

from .backbone import CLIPBackbone
from .configuration_clip4clip import CLIP4ClipConfig
from .heads import TightTransfHead, build_loose_head
from .losses import contrastive_loss
from .outputs import RetrievalOutput, TextEncoding, VideoEncoding
from .pooling import mean_pool_normalized


class CLIP4ClipPreTrainedModel(PreTrainedModel):
    """Weight init and loading conventions for CLIP4Clip and the methods built on it."""

    config: CLIP4ClipConfig
    base_model_prefix = "clip4clip"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings"]

    def __init__(self, config: CLIP4ClipConfig):
        super().__init__(config)
        # The temporal / cross layers have no PreTrainedModel of their own to resolve their attention implementation:
        # they follow the model's.
        if config.temporal_config._attn_implementation is None:
            config.temporal_config._attn_implementation_internal = config._attn_implementation

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


class CLIP4ClipModel(CLIP4ClipPreTrainedModel):
    """CLIP4Clip: CLIP towers (`self.clip`) + a similarity head.

    Loose heads (`meanP`, `seqLSTM`, `seqTransf`; `self.temporal`) turn frame features into a normalised video
    embedding and score by `exp(logit_scale) * cosine`. The tight head (`tightTransf`; `self.cross`) scores each
    (text, video) pair with a cross encoder.

    Example:

    ```python
    >>> model = CLIP4ClipModel.from_clip("openai/clip-vit-base-patch32", sim_header="seqTransf")
    >>> text = model.encode_text(input_ids, attention_mask)
    >>> video = model.encode_video(pixel_values_videos, video_mask)
    >>> logits = model.similarity(text, video)  # (num_texts, num_videos)
    ```
    """

    def __init__(self, config: CLIP4ClipConfig):
        super().__init__(config)
        self.clip = CLIPBackbone(config)
        if config.sim_header == "tightTransf":
            self.cross = TightTransfHead(config.temporal_config)
        else:
            self.temporal = build_loose_head(config.sim_header, config.temporal_config)
        self.post_init()

    @property
    def gather_for_loss(self) -> bool:
        """Whether training gathers encodings across processes before the loss (the original: loose heads only)."""
        return self.config.sim_header != "tightTransf"

    @classmethod
    def from_clip(
        cls, clip: str | os.PathLike | CLIPModel, sim_header: str = "meanP", **config_overrides
    ) -> "CLIP4ClipModel":
        """A CLIP4Clip model initialised from a transformers CLIP checkpoint, the way the original initialises it.

        CLIP weights are copied; the 3d patch embedding starts equal to the 2d one; `seqTransf` / `tightTransf`
        take their position embeddings from CLIP's text positions and their layers from CLIP's first text layers;
        everything else (LSTM, tightTransf pooler and score layer) is random.

        Args:
            clip: a `CLIPModel`, or a Hub id / folder that `CLIPModel.from_pretrained` loads.
            sim_header: "meanP", "seqLSTM", "seqTransf" or "tightTransf".
            **config_overrides: other `CLIP4ClipConfig` fields, e.g. `linear_patch="3d"`,
                `temporal_config={"num_hidden_layers": 4}`, `max_frames=12`.
        """
        if not isinstance(clip, CLIPModel):
            clip = CLIPModel.from_pretrained(clip)
        clip_config = clip.config
        config = CLIP4ClipConfig(
            text_config=copy.deepcopy(clip_config.text_config),
            vision_config=copy.deepcopy(clip_config.vision_config),
            projection_dim=clip_config.projection_dim,
            logit_scale_init_value=float(clip_config.logit_scale_init_value),
            sim_header=sim_header,
            **config_overrides,
        )
        model = cls(config)
        model.clip.load_clip_state_dict(clip.state_dict())
        model.init_from_clip()
        return model

    @torch.no_grad()
    def init_from_clip(self) -> None:
        """Initialise the parts CLIP4Clip adds from the CLIP weights in `self.clip` (see `from_clip`)."""
        self.clip.inflate_patch_embedding()
        head = self.cross if self.config.sim_header == "tightTransf" else self.temporal
        head.init_from_clip(self.clip.text_model)

    def _check_video(self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None) -> torch.Tensor:
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                "pixel_values_videos must be (batch_size, num_frames, 3, height, width), "
                f"got shape {tuple(pixel_values_videos.shape)}"
            )
        batch_size, num_frames = pixel_values_videos.shape[:2]
        image_size = self.config.vision_config.image_size
        if pixel_values_videos.shape[-2:] != (image_size, image_size):
            raise ValueError(
                f"pixel_values_videos frames are {tuple(pixel_values_videos.shape[-2:])}, "
                f"the model expects ({image_size}, {image_size})"
            )
        positions = self.config.temporal_config.max_position_embeddings
        needed = num_frames + 1 if self.config.sim_header == "tightTransf" else num_frames
        if self.config.sim_header in ("seqTransf", "tightTransf") and needed > positions:
            raise ValueError(
                f"{num_frames} frames per video exceed the {self.config.sim_header} head's {positions} positions"
            )
        if video_mask is None:
            return torch.ones(batch_size, num_frames, dtype=torch.long, device=pixel_values_videos.device)
        if video_mask.shape != (batch_size, num_frames):
            raise ValueError(
                f"video_mask must be (batch_size, num_frames) = {(batch_size, num_frames)}, "
                f"got {tuple(video_mask.shape)}"
            )
        return video_mask

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TextEncoding:
        """Encode captions.

        Args:
            input_ids: `(batch_size, max_words)` CLIP token ids with an end-of-text token in each row.
            attention_mask: `(batch_size, max_words)`; defaults to all ones.
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
        """Encode videos.

        Args:
            pixel_values_videos: `(batch_size, num_frames, 3, image_size, image_size)` normalised frames.
            video_mask: `(batch_size, num_frames)`, 1 for real frames; defaults to all ones.

        Returns:
            A `VideoEncoding`. Its `video_embeds` is the loose head's pooled embedding; for `tightTransf`, which
            has none, it is the mean-pooled CLIP frame embedding (a first-stage embedding to re-rank with
            `similarity`).
        """
        video_mask = self._check_video(pixel_values_videos, video_mask)
        frame_features = self.clip.encode_frames(pixel_values_videos).pooler_output
        if self.config.sim_header == "tightTransf":
            head_features = frame_features  # scored pairwise later; pool CLIP's frames for a first stage
        else:
            head_features = self.temporal(frame_features, video_mask)
        return VideoEncoding(
            frame_features=frame_features,
            video_mask=video_mask,
            video_embeds=mean_pool_normalized(head_features, video_mask),
        )

    def similarity(self, text_encoding: TextEncoding, video_encoding: VideoEncoding) -> torch.Tensor:
        """`(num_texts, num_videos)` logits: `exp(logit_scale) * cosine` (loose heads) or cross-encoder scores."""
        if self.config.sim_header == "tightTransf":
            return self.cross.score_all_pairs(
                text_encoding.text_features,
                video_encoding.frame_features,
                video_encoding.video_mask,
                self.config.cross_chunk_size,
            )
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        return self.clip.logit_scale.exp() * text_embeds @ video_encoding.video_embeds.t()

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(batch_size, projection_dim)` L2-normalised text embeddings (the loose heads' dot-product space)."""
        return F.normalize(self.encode_text(input_ids, attention_mask).text_features, dim=-1)

    def get_video_features(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`(batch_size, projection_dim)` L2-normalised video embeddings (`VideoEncoding.video_embeds`)."""
        return self.encode_video(pixel_values_videos, video_mask).video_embeds

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
        return_loss: bool = False,
    ) -> RetrievalOutput:
        """Score a batch of captions against a batch of videos (caption i belongs to video i for the loss).

        Args:
            input_ids: `(batch_size, max_words)`.
            attention_mask: `(batch_size, max_words)`.
            pixel_values_videos: `(batch_size, num_frames, 3, image_size, image_size)`.
            video_mask: `(batch_size, num_frames)`.
            return_loss: add the symmetric contrastive loss.
        """
        if pixel_values_videos is None:
            raise ValueError("forward needs pixel_values_videos; use encode_text for captions alone")
        text_encoding = self.encode_text(input_ids, attention_mask)
        video_encoding = self.encode_video(pixel_values_videos, video_mask)
        logits_per_text = self.similarity(text_encoding, video_encoding)
        return RetrievalOutput(
            loss=contrastive_loss(logits_per_text) if return_loss else None,
            logits_per_text=logits_per_text,
            logits_per_video=logits_per_text.t(),
            text_embeds=F.normalize(text_encoding.text_features, dim=-1),
            video_embeds=video_encoding.video_embeds,
            text_encoding=text_encoding,
            video_encoding=video_encoding,
        )


__all__ = ["CLIP4ClipModel", "CLIP4ClipPreTrainedModel"]
