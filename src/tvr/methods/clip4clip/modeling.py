# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""CLIP4Clip (Luo et al., 2021) on a transformers image-text tower: text-to-video retrieval with four similarity heads.

Reference: github.com/ArrowLuo/CLIP4Clip. A converted original checkpoint gives the original similarity matrix
(fp32, atol 1e-5; see tests/test_clip4clip.py). Differences from the reference, all deliberate:
- the model runs in the dtype it is loaded in (fp32 by default); the original keeps CLIP's linear weights in fp16;
- a video without valid frames gets similarity 0 instead of NaN (loose heads) and never NaN in attention;
- a seqLSTM checkpoint's unused `frame_position_embeddings` is dropped.
"""

import os

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from ...modeling.base import ImageTextRetrievalPreTrainedModel
from ...modeling.heads import TightTransfHead, build_loose_head
from ...modeling.outputs import TextEncoding, VideoEncoding
from ...modeling.pooling import mean_pool_normalized
from ...modeling.towers import ImageTextTower
from .configuration import CLIP4ClipConfig


class CLIP4ClipPreTrainedModel(ImageTextRetrievalPreTrainedModel):
    """Weight init and loading conventions for CLIP4Clip (those of `ImageTextRetrievalPreTrainedModel`)."""

    config: CLIP4ClipConfig
    base_model_prefix = "clip4clip"


class CLIP4ClipModel(CLIP4ClipPreTrainedModel):
    """CLIP4Clip: an image-text tower (`self.clip`: CLIP, MetaCLIP 2 or SigLIP) + a similarity head.

    Loose heads (`meanP`, `seqLSTM`, `seqTransf`; `self.temporal`) turn frame features into a normalised video
    embedding and score by the tower's `exp(logit_scale) * cosine` (+ `logit_bias` for SigLIP). The tight head
    (`tightTransf`; `self.cross`) scores each (text, video) pair with a cross encoder.

    Example:

    ```python
    >>> model = CLIP4ClipModel.from_image_text_model("openai/clip-vit-base-patch32", sim_header="seqTransf")
    >>> text = model.encode_text(input_ids, attention_mask)
    >>> video = model.encode_video(pixel_values_videos, video_mask)
    >>> logits = model.similarity(text, video)  # (num_texts, num_videos)
    ```
    """

    def __init__(self, config: CLIP4ClipConfig):
        super().__init__(config)
        self.clip = ImageTextTower(config)
        if config.sim_header == "tightTransf":
            self.cross = TightTransfHead(config.temporal_config)
            # the cross encoder's score has no temperature: the tower's logit scale (and bias) would never train
            for unused in (self.clip.logit_scale, getattr(self.clip, "logit_bias", None)):
                if unused is not None:
                    unused.requires_grad_(False)
        else:
            self.temporal = build_loose_head(config.sim_header, config.temporal_config)
        self.post_init()

    @property
    def gather_for_loss(self) -> bool:
        """Whether training gathers encodings across processes before the loss (the original: loose heads only)."""
        return self.config.sim_header != "tightTransf"

    @classmethod
    def from_image_text_model(
        cls, image_text_model: str | os.PathLike | PreTrainedModel, sim_header: str = "meanP", **config_overrides
    ) -> "CLIP4ClipModel":
        """A CLIP4Clip model on a transformers image-text model (CLIP, MetaCLIP 2, SigLIP), initialised the way the
        original initialises it from CLIP (see `init_from_tower`).

        Args:
            image_text_model: the model, or a Hub id / folder that `AutoModel.from_pretrained` loads.
            sim_header: "meanP", "seqLSTM", "seqTransf" or "tightTransf".
            **config_overrides: other `CLIP4ClipConfig` fields, e.g. `linear_patch="3d"`,
                `temporal_config={"num_hidden_layers": 4}`, `max_frames=12`.
        """
        return super().from_image_text_model(image_text_model, sim_header=sim_header, **config_overrides)

    @classmethod
    def from_clip(
        cls, clip: str | os.PathLike | PreTrainedModel, sim_header: str = "meanP", **config_overrides
    ) -> "CLIP4ClipModel":
        """Alias of `from_image_text_model`."""
        return cls.from_image_text_model(clip, sim_header=sim_header, **config_overrides)

    @torch.no_grad()
    def init_from_tower(self) -> None:
        """Initialise the parts CLIP4Clip adds from the tower weights in `self.clip`, as the original does.

        Tower weights are copied; the 3d patch embedding starts equal to the 2d one; `seqTransf` / `tightTransf`
        take their position embeddings from the text tower's positions and their layers from its first text layers;
        everything else (LSTM, tightTransf pooler and score layer) is random.
        """
        super().init_from_tower()
        self.head.init_from_text_tower(self.clip.text_model)

    @property
    def head(self) -> torch.nn.Module:
        """The similarity head: `self.cross` (tightTransf) or `self.temporal`."""
        return self.cross if self.config.sim_header == "tightTransf" else self.temporal

    def _check_num_frames(self, num_frames: int) -> None:
        positions = self.config.temporal_config.max_position_embeddings
        needed = num_frames + 1 if self.config.sim_header == "tightTransf" else num_frames
        if self.config.sim_header in ("seqTransf", "tightTransf") and needed > positions:
            raise ValueError(
                f"{num_frames} frames per video exceed the {self.config.sim_header} head's {positions} positions"
            )

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
        return self.encode_frame_features(self.clip.encode_frames(pixel_values_videos).pooler_output, video_mask)

    def encode_frame_features(self, frame_features: torch.Tensor, video_mask: torch.Tensor) -> VideoEncoding:
        """The video encoding of the tower's projected frame features `(batch_size, num_frames, projection_dim)`:
        the loose head applied once per video (what `encode_video` does after the tower)."""
        if self.config.sim_header == "tightTransf":
            head_features = frame_features  # scored pairwise later; pool the tower's frames for a first stage
        else:
            head_features = self.temporal(frame_features, video_mask)
        return VideoEncoding(
            frame_features=frame_features,
            video_mask=video_mask,
            video_embeds=mean_pool_normalized(head_features, video_mask),
        )

    @property
    def scores_by_embedding_product(self) -> bool:
        """Loose heads score `scale * cos(text_features, video_embeds)`; tightTransf's cross encoder does not."""
        return self.config.sim_header != "tightTransf"

    def similarity(self, text_encoding: TextEncoding, video_encoding: VideoEncoding) -> torch.Tensor:
        """`(num_texts, num_videos)` logits: the tower's scaled cosine (loose heads) or cross-encoder scores."""
        if self.config.sim_header == "tightTransf":
            return self.cross.score_all_pairs(
                text_encoding.text_features,
                video_encoding.frame_features,
                video_encoding.video_mask,
                self.config.cross_chunk_size,
            )
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        return self.clip.scale_logits(text_embeds @ video_encoding.video_embeds.t())


__all__ = ["CLIP4ClipModel", "CLIP4ClipPreTrainedModel"]
