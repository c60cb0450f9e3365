# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""EERCF (Tian et al., AAAI 2024): coarse-to-fine text-to-video retrieval on a transformers image-text tower.

Reference: github.com/adxcreative/EERCF. A video is encoded once into three text-independent granularities:
a video vector (CLIP4Clip's seqTransf head + masked mean), the raw CLIP frame features and every patch token of
every frame. Retrieval ranks all videos by the cheap video-level score, then re-scores each query's top-k with the
frame and patch scores (`similarity(..., rerank_top_k=k)`).

Scores for text t and video j (all times exp(logit_scale), t and every visual feature L2-normalised):
- V  (video, coarse):  (t @ W_video) . v_j
- WF (weak frame):     sum_f c_f * (softmax(c / 0.01) @ W_frame)_f with c_f = t . frame_jf
- WP (weak patch):     sum_n c_n * softmax(c / 0.01)_n over all patches of all frames, c_n = t . patch_jn
- SF (strong frame):   t . normalise(sum_f g_f * context_jf), g = softmax(c / 0.1): frames gated by the query text
  pool the temporally contextualised frame features (the parameter-free text-gated interaction block)
- SP (strong patch):   the same over patches (temperature 0.01); used in training only.

Like the original, and unlike the video vector, the frame and patch scores do NOT mask padded frames: a padded
(all-zero) frame still has CLIP features that take part in their softmaxes. This is kept for parity.
Other differences from the reference, all deliberate: the model runs in the dtype it is loaded in (fp32 by
default; the original keeps CLIP's linear weights in fp16); at evaluation the cached patch embeddings are stored in
`config.patch_embeds_dtype` (float16 by default; use float32 for bit-level parity); the fine stage scores only the
top-k pairs instead of all pairs (same result).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...modeling.base import DEFAULT_GALLERY_BLOCK, ImageTextRetrievalPreTrainedModel
from ...modeling.heads import SeqTransfHead
from ...modeling.outputs import RetrievalLossOutput, RetrievalOutput, TextEncoding, VideoEncoding
from ...modeling.pooling import masked_mean
from ...modeling.towers import ImageTextTower
from .configuration import EERCFConfig
from .rerank import two_stage_logits


def weak_frame_logits(frame_sims: torch.Tensor, frame_logit_weight: torch.Tensor, temperature: float) -> torch.Tensor:
    """EERCF's weak sentence-frame score (from DRL): softmax-weighted frame similarities, mixed by a learnable matrix.

    Args:
        frame_sims: `(..., num_frames)` cosine similarities of one text with each frame.
        frame_logit_weight: `(num_frames, num_frames)`; the identity gives a plain softmax-weighted sum.
        temperature: softmax temperature (0.01 in the original).

    Returns:
        `(...)` scores, without the logit scale.
    """
    weights = torch.softmax(frame_sims / temperature, dim=-1) @ frame_logit_weight
    return (frame_sims * weights).sum(dim=-1)


def attention_pooled_logits(token_sims: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax-weighted mean of similarities (EERCF's weak sentence-patch score).

    Args:
        token_sims: `(..., num_tokens)` cosine similarities of one text with each token (patch).
        temperature: softmax temperature (0.01 in the original).

    Returns:
        `(...)` scores, without the logit scale.
    """
    return (token_sims * torch.softmax(token_sims / temperature, dim=-1)).sum(dim=-1)


def text_gated_pool(gate_sims: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """EERCF's text-gated interaction block: pool tokens with softmax weights from their similarity to a text.

    Args:
        gate_sims: `(..., num_tokens)` similarities of the gating text with each token.
        tokens: `(..., num_tokens, dim)`, broadcastable against `gate_sims` (e.g. `(num_videos, num_tokens, dim)`
            with `gate_sims` of shape `(num_texts, num_videos, num_tokens)`).
        temperature: softmax temperature (0.1 for frames, 0.01 for patches in the original).

    Returns:
        `(..., dim)` L2-normalised pooled vectors.
    """
    gate = torch.softmax(gate_sims / temperature, dim=-1)
    return F.normalize(torch.einsum("...k,...kd->...d", gate, tokens), dim=-1)


def pearson_penalty(
    text_embeds: torch.Tensor, video_embeds: torch.Tensor, diagonal_weight: float, off_diagonal_weight: float
) -> torch.Tensor:
    """EERCF's intra-feature Pearson constraint (Barlow-Twins-like) between paired text and video features.

    Each feature dimension is standardised over the batch (unbiased std), `C = z_text^T z_video / batch_size`, and
    the penalty is `diagonal_weight * sum_d (C_dd - 1)^2 + off_diagonal_weight * sum_{d != e} C_de^2`.

    Args:
        text_embeds: `(batch_size, dim)`, row i paired with row i of `video_embeds`; batch_size >= 2.
        video_embeds: `(batch_size, dim)`.
    """
    batch_size = text_embeds.shape[0]
    # batch statistics in fp32 even under bf16 / fp16 autocast: a standardised product of nearly equal values
    # loses every digit in half precision (and the original computes it in fp32)
    with torch.autocast(text_embeds.device.type, enabled=False):
        text_z, video_z = _standardize(text_embeds.float()), _standardize(video_embeds.float())
        correlation = text_z.t() @ video_z / batch_size
        diagonal = correlation.diagonal()
        on_diagonal = (diagonal - 1).pow(2).sum()
        off_diagonal = correlation.pow(2).sum() - diagonal.pow(2).sum()
        return diagonal_weight * on_diagonal + off_diagonal_weight * off_diagonal


def _standardize(features: torch.Tensor) -> torch.Tensor:
    """Each column minus its batch mean over its unbiased std. A column constant over the batch (its std 0: possible
    when half-precision features of a small batch round to one value) gives zeros where the original gives NaN."""
    centred = features - features.mean(dim=0)
    return centred / features.std(dim=0).clamp_min(torch.finfo(features.dtype).tiny)


@dataclass
class EERCFVideoEncoding(VideoEncoding):
    """What `EERCFModel.encode_video` returns: every granularity the scores need, all text-independent.

    Args:
        frame_features (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            Projected CLIP CLS feature of each frame, before the temporal transformer, not normalised.
        video_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`):
            1 for real frames, 0 for padding (used by the video vector only, see the module docstring).
        video_embeds (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            The coarse video vector: masked mean of the normalised temporal-transformer outputs, normalised.
        context_frame_embeds (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            L2-normalised temporal-transformer outputs (what the text-gated frame score pools).
        patch_embeds (`torch.Tensor` of shape `(batch_size, num_frames * num_patches, projection_dim)`):
            L2-normalised projected patch tokens of all frames; in `config.patch_embeds_dtype` when the model is
            in eval mode (a cache), in the compute dtype when training.
    """

    context_frame_embeds: torch.FloatTensor | None = None
    patch_embeds: torch.Tensor | None = None


@dataclass
class EERCFLogits(ModelOutput):
    """EERCF's per-granularity `(num_texts, num_videos)` logits, all including `exp(logit_scale)`.

    Args:
        video_logits: coarse video-sentence score V.
        weak_frame_logits: weak sentence-frame score WF.
        weak_patch_logits: weak sentence-patch score WP.
        strong_frame_logits: text-gated frame score SF. At evaluation each column is gated by the row's text; in
            training by the video's own caption (detached gate), as the original trains it.
        strong_patch_logits: text-gated patch score SP (training form only; evaluation never uses it).
        fine_logits: the evaluation fusion of the fine stage,
            `0.5 V + 0.8 WF + 0.2 SF + 0.2 WP` by default (`config.rerank_*_weight`).
    """

    video_logits: torch.FloatTensor | None = None
    weak_frame_logits: torch.FloatTensor | None = None
    weak_patch_logits: torch.FloatTensor | None = None
    strong_frame_logits: torch.FloatTensor | None = None
    strong_patch_logits: torch.FloatTensor | None = None
    fine_logits: torch.FloatTensor | None = None


@dataclass
class EERCFLossOutput(RetrievalLossOutput):
    """EERCF's training loss and its parts (`EERCFModel.compute_loss`).

    Args:
        loss: `inter_loss + pearson_loss_weight * intra_loss`.
        inter_loss: `weak_loss_weight * CE(weak_logits) + strong_loss_weight * CE(strong_logits)`, each CE the
            symmetric contrastive loss.
        intra_loss: weighted sum of the three Pearson terms.
        weak_logits: `video_weight * V + weak_frame_weight * WF + weak_patch_weight * WP`, `(batch, batch)`.
        strong_logits: `strong_frame_weight * SF + strong_patch_weight * SP` (caption-gated), `(batch, batch)`.
        logits: the training-form granularity matrices.
        pearson_video / pearson_frame / pearson_patch: Pearson terms of the text with the video vector, with the
            caption-gated frame vector and with the caption-gated patch vector.
    """

    loss: torch.FloatTensor | None = None
    inter_loss: torch.FloatTensor | None = None
    intra_loss: torch.FloatTensor | None = None
    weak_logits: torch.FloatTensor | None = None
    strong_logits: torch.FloatTensor | None = None
    logits: EERCFLogits | None = None
    pearson_video: torch.FloatTensor | None = None
    pearson_frame: torch.FloatTensor | None = None
    pearson_patch: torch.FloatTensor | None = None


# What `EERCFModel.forward` returns: with `return_loss=True`, `loss_output` is an `EERCFLossOutput`.
EERCFOutput = RetrievalOutput


class EERCFPreTrainedModel(ImageTextRetrievalPreTrainedModel):
    """`ImageTextRetrievalPreTrainedModel`'s init and loading conventions, plus identity init of EERCF's two logit
    matrices."""

    config: EERCFConfig
    config_class = EERCFConfig
    base_model_prefix = "eercf"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, EERCFModel):
            init.eye_(module.video_logit_weight)
            init.eye_(module.frame_logit_weight)


class EERCFModel(EERCFPreTrainedModel):
    """EERCF: an image-text tower (`self.clip`), CLIP4Clip's seqTransf head (`self.temporal`), and two learnable logit
    matrices: `video_logit_weight` `(projection_dim, projection_dim)` for the coarse score and `frame_logit_weight`
    `(max_frames, max_frames)` for the weak frame score (so videos must have exactly `max_frames` frames, padded
    with `video_mask` 0).

    Example:

    ```python
    >>> model = EERCFModel.from_image_text_model("openai/clip-vit-base-patch32", max_frames=12).eval()
    >>> text = model.encode_text(input_ids, attention_mask)
    >>> video = model.encode_video(pixel_values_videos, video_mask)
    >>> coarse = model.similarity(text, video)                   # stage 1 only: (num_texts, num_videos)
    >>> final = model.similarity(text, video, rerank_top_k=50)   # top-50 per text re-scored: 100 + fine score
    ```

    `forward(input_ids, attention_mask, pixel_values_videos, video_mask, return_loss=False, rerank_top_k=None)`
    (from `ImageTextRetrievalPreTrainedModel`) passes `rerank_top_k` to `similarity` for `logits_per_text` (default: the
    coarse logits); `return_loss=True` adds EERCF's training loss (`loss`, parts in `loss_output`, an
    `EERCFLossOutput`). Videos are `(batch_size, max_frames, 3, image_size, image_size)`.
    """

    gather_for_loss = True  # the original all-gathers every feature before its loss

    def __init__(self, config: EERCFConfig):
        super().__init__(config)
        self.clip = ImageTextTower(config)
        self.temporal = SeqTransfHead(config.temporal_config)
        self.video_logit_weight = nn.Parameter(torch.eye(config.projection_dim))
        self.frame_logit_weight = nn.Parameter(torch.eye(config.max_frames))
        self.post_init()

    @torch.no_grad()
    def init_from_tower(self) -> None:
        """Initialise the parts EERCF adds from the tower weights in `self.clip`, as the original does from CLIP.

        Tower weights are copied; the temporal head takes its positions from the text tower's positions and its
        layers from its first text layers; both logit matrices start as identities.
        """
        super().init_from_tower()
        self.temporal.init_from_text_tower(self.clip.text_model)
        self.video_logit_weight.copy_(torch.eye(self.config.projection_dim))
        self.frame_logit_weight.copy_(torch.eye(self.config.max_frames))

    # ----------------------------------------------------------------------------------------------- encoders

    def _check_num_frames(self, num_frames: int) -> None:
        if num_frames != self.config.max_frames:
            raise ValueError(
                f"pixel_values_videos has {num_frames} frames per video; EERCF's frame-logit matrix needs exactly "
                f"max_frames={self.config.max_frames} (pad shorter videos and mark the padding 0 in video_mask)"
            )

    def encode_video(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> EERCFVideoEncoding:
        """Encode videos into the video vector, frame features and patch embeddings (all text-independent).

        Args:
            pixel_values_videos: `(batch_size, max_frames, 3, image_size, image_size)` normalised frames.
            video_mask: `(batch_size, max_frames)`, 1 for real frames; defaults to all ones.
        """
        video_mask = self._check_video(pixel_values_videos, video_mask)
        frames = self.clip.encode_frames(pixel_values_videos, output_all_tokens=True)
        frame_features = frames.pooler_output
        context_frame_embeds = F.normalize(self.temporal(frame_features, video_mask), dim=-1)
        patch_embeds = F.normalize(frames.patch_tokens.flatten(1, 2), dim=-1)
        if not self.training:
            # The patches are ~num_patches times the rest of the encoding: cache them compactly.
            patch_embeds = patch_embeds.to(getattr(torch, self.config.patch_embeds_dtype))
        return EERCFVideoEncoding(
            frame_features=frame_features,
            video_mask=video_mask,
            video_embeds=F.normalize(masked_mean(context_frame_embeds, video_mask), dim=-1),
            context_frame_embeds=context_frame_embeds,
            patch_embeds=patch_embeds,
        )

    # ------------------------------------------------------------------------------------------------- scores

    def video_logits(self, text_encoding: TextEncoding, video_encoding: EERCFVideoEncoding) -> torch.Tensor:
        """Coarse (stage-1) logits `(num_texts, num_videos)`: a matmul of cacheable vectors."""
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        return self.clip.scale_logits((text_embeds @ self.video_logit_weight) @ video_encoding.video_embeds.t())

    def _similarities(
        self, text_embeds: torch.Tensor, video_encoding: EERCFVideoEncoding
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine similarities of every text with every video's frames and patches.

        Returns:
            `(num_texts, num_videos, num_frames)` and `(num_texts, num_videos, num_frames * num_patches)`.
        """
        frame_embeds = F.normalize(video_encoding.frame_features, dim=-1)
        patch_embeds = video_encoding.patch_embeds.to(text_embeds.dtype)
        frame_sims = torch.einsum("td,vfd->tvf", text_embeds, frame_embeds)
        patch_sims = torch.einsum("td,vnd->tvn", text_embeds, patch_embeds)
        return frame_sims, patch_sims

    def _pair_similarities(
        self,
        texts: torch.Tensor,
        video_index: torch.Tensor,
        frame_embeds: torch.Tensor,
        video_encoding: EERCFVideoEncoding,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame and patch similarities and query-gated frame vectors of aligned (text, video) pairs.

        Args:
            texts: `(num_pairs, dim)` normalised text embeddings, one per pair.
            video_index: `(num_pairs,)` index of each pair's video.
            frame_embeds: `(num_videos, num_frames, dim)` normalised frame features of the gallery.
            video_encoding: the gallery.

        Returns:
            `(num_pairs, num_frames)`, `(num_pairs, num_frames * num_patches)` and `(num_pairs, dim)`.
            The pairs of one video should be consecutive: each run of equal `video_index` reads that video once
            (patches upcast from their compact storage only here) and scores all its texts with matmuls.
        """
        videos, counts = torch.unique_consecutive(video_index, return_counts=True)
        frame_sims, patch_sims, gated_frames = [], [], []
        for video, video_texts in zip(videos.tolist(), texts.split(counts.tolist())):
            sims = video_texts @ frame_embeds[video].t()
            frame_sims.append(sims)
            patch_sims.append(video_texts @ video_encoding.patch_embeds[video].to(texts.dtype).t())
            gated_frames.append(
                text_gated_pool(sims, video_encoding.context_frame_embeds[video], self.config.frame_gate_temperature)
            )
        return torch.cat(frame_sims), torch.cat(patch_sims), torch.cat(gated_frames)

    def _weak_logits(self, frame_sims: torch.Tensor, patch_sims: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled weak frame (WF) and weak patch (WP) logits from frame / patch similarities `(..., tokens)`."""
        weak_frame = weak_frame_logits(frame_sims, self.frame_logit_weight, self.config.weak_temperature)
        weak_patch = attention_pooled_logits(patch_sims, self.config.weak_temperature)
        return self.clip.scale_logits(weak_frame), self.clip.scale_logits(weak_patch)

    def _fine_logits(
        self, text_embeds: torch.Tensor, frame_sims: torch.Tensor, patch_sims: torch.Tensor, gated_frames: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scaled WF, WP and SF from similarities and query-gated frame vectors, broadcasting over leading dims.

        All pairs: `text_embeds` `(num_texts, 1, dim)`, the rest `(num_texts, num_videos, ...)`.
        Aligned pairs: `(num_pairs, ...)` everywhere.
        """
        weak_frame, weak_patch = self._weak_logits(frame_sims, patch_sims)
        strong_frame = self.clip.scale_logits((text_embeds * gated_frames).sum(dim=-1))
        return weak_frame, weak_patch, strong_frame

    def _fuse_fine(
        self, video: torch.Tensor, weak_frame: torch.Tensor, weak_patch: torch.Tensor, strong_frame: torch.Tensor
    ) -> torch.Tensor:
        config = self.config
        return (
            config.rerank_video_weight * video
            + config.rerank_weak_frame_weight * weak_frame
            + config.rerank_strong_frame_weight * strong_frame
            + config.rerank_weak_patch_weight * weak_patch
        )

    def granularity_logits(self, text_encoding: TextEncoding, video_encoding: EERCFVideoEncoding) -> EERCFLogits:
        """Every evaluation granularity for ALL (text, video) pairs (the original's dense evaluation).

        Memory grows as `num_texts * num_videos * num_frames * num_patches`: call it on blocks, or use
        `similarity(..., rerank_top_k=k)`, which needs the fine scores of `num_texts * k` pairs only.
        """
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        video = self.video_logits(text_encoding, video_encoding)
        frame_sims, patch_sims = self._similarities(text_embeds, video_encoding)
        gated_frames = text_gated_pool(
            frame_sims, video_encoding.context_frame_embeds, self.config.frame_gate_temperature
        )
        weak_frame, weak_patch, strong_frame = self._fine_logits(
            text_embeds[:, None], frame_sims, patch_sims, gated_frames
        )
        return EERCFLogits(
            video_logits=video,
            weak_frame_logits=weak_frame,
            weak_patch_logits=weak_patch,
            strong_frame_logits=strong_frame,
            fine_logits=self._fuse_fine(video, weak_frame, weak_patch, strong_frame),
        )

    def similarity(
        self,
        text_encoding: TextEncoding,
        video_encoding: EERCFVideoEncoding,
        rerank_top_k: int | None = None,
        pairs_per_chunk: int = 4096,
    ) -> torch.Tensor:
        """`(num_texts, num_videos)` retrieval logits.

        Args:
            text_encoding: from `encode_text`.
            video_encoding: from `encode_video`; with `rerank_top_k`, pass the WHOLE gallery (the top-k is taken
                over these videos).
            rerank_top_k: `None` (or 0): the coarse video-level logits only (stage 1; safe to compute on blocks of
                videos). `k`: EERCF's two-stage evaluation: each text's top-k videos by coarse score get
                `rerank_offset + fine score` (`EERCFLogits.fine_logits`), the other entries keep the coarse score.
                Fine scores are computed for those `num_texts * k` pairs only; the result equals fine-scoring all
                pairs and then selecting. `config.rerank_top_k` is the k the original evaluates with. As in the
                original, the offset puts the re-ranked videos first only while their fine scores exceed the other
                coarse scores minus the offset (always so in practice); exact coarse ties at the k-th place are
                broken by `torch.topk` (the original: numpy argsort).
            pairs_per_chunk: (text, video) pairs fine-scored at once; memory grows as
                `pairs_per_chunk * num_frames * num_patches` floats (4096 pairs: 10 MB for ViT-B/32, 12 frames).
        """
        coarse = self.video_logits(text_encoding, video_encoding)
        if not rerank_top_k:
            return coarse
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        frame_embeds = F.normalize(video_encoding.frame_features, dim=-1)

        def score_pairs(text_index: torch.Tensor, video_index: torch.Tensor) -> torch.Tensor:
            texts = text_embeds[text_index]
            frame_sims, patch_sims, gated_frames = self._pair_similarities(
                texts, video_index, frame_embeds, video_encoding
            )
            weak_frame, weak_patch, strong_frame = self._fine_logits(texts, frame_sims, patch_sims, gated_frames)
            return self._fuse_fine(coarse[text_index, video_index], weak_frame, weak_patch, strong_frame)

        return two_stage_logits(
            coarse, rerank_top_k, score_pairs, offset=self.config.rerank_offset, pairs_per_chunk=pairs_per_chunk
        )

    def score_gallery(
        self, text_encoding, video_encoding, block_size=None, progress=False, rerank_top_k=None, **similarity_kwargs
    ):
        """EERCF's two-stage evaluation over the whole gallery: each block of texts is scored against all videos
        with `similarity(..., rerank_top_k=k)` (default `config.rerank_top_k`; `0` for the coarse stage alone)."""
        rerank_top_k = self.config.rerank_top_k if rerank_top_k is None else rerank_top_k
        text_block = block_size or DEFAULT_GALLERY_BLOCK
        video_block = None if rerank_top_k else text_block  # the top-k is taken over the whole gallery
        return self._score_blocks(
            text_encoding, video_encoding, text_block, video_block, progress, rerank_top_k=rerank_top_k,
            **similarity_kwargs,
        )

    # --------------------------------------------------------------------------------------------------- loss

    def compute_loss(
        self,
        text_encoding: TextEncoding,
        video_encoding: EERCFVideoEncoding,
        logits_per_text: torch.Tensor | None = None,
    ) -> EERCFLossOutput:
        """EERCF's training loss on a batch of pairs (text i belongs to video i), as the original's train step.

        The strong (text-gated) scores gate each video by its OWN caption with the gate detached, and compare the
        gated video with every text. The training loop calls this on encodings gathered across processes. On a batch
        of one pair the Pearson terms (correlations over the batch) are undefined and count as 0.
        `logits_per_text` is ignored: the loss builds its own per-granularity matrices.
        """
        config = self.config
        batch_size = text_encoding.text_features.shape[0]
        if video_encoding.video_embeds.shape[0] != batch_size:
            raise ValueError(
                f"compute_loss needs one video per text, got {batch_size} texts and "
                f"{video_encoding.video_embeds.shape[0]} videos"
            )
        text_embeds = F.normalize(text_encoding.text_features, dim=-1)
        patch_embeds = video_encoding.patch_embeds.to(text_embeds.dtype)
        video = self.video_logits(text_encoding, video_encoding)
        frame_sims, patch_sims = self._similarities(text_embeds, video_encoding)
        weak_frame, weak_patch = self._weak_logits(frame_sims, patch_sims)
        # Gate video j with caption j (the diagonal), without gradient through the gate.
        own_frames = frame_sims.diagonal().t().detach()  # (batch, num_frames)
        own_patches = patch_sims.diagonal().t().detach()  # (batch, num_frames * num_patches)
        gated_frames = text_gated_pool(own_frames, video_encoding.context_frame_embeds, config.frame_gate_temperature)
        gated_patches = text_gated_pool(own_patches, patch_embeds, config.patch_gate_temperature)
        strong_frame = self.clip.scale_logits(text_embeds @ gated_frames.t())
        strong_patch = self.clip.scale_logits(text_embeds @ gated_patches.t())

        weak = (
            config.video_weight * video
            + config.weak_frame_weight * weak_frame
            + config.weak_patch_weight * weak_patch
        )
        strong = config.strong_frame_weight * strong_frame + config.strong_patch_weight * strong_patch
        inter = config.weak_loss_weight * self.retrieval_loss(weak) + config.strong_loss_weight * self.retrieval_loss(
            strong
        )

        def pearson(video_side: torch.Tensor) -> torch.Tensor:
            if batch_size < 2:  # a correlation over one pair is undefined: the intra-feature term is left out
                return video_side.new_zeros(())
            return pearson_penalty(
                text_embeds, video_side, config.pearson_diagonal_weight, config.pearson_off_diagonal_weight
            )

        pearson_video = pearson(video_encoding.video_embeds)
        pearson_frame = pearson(gated_frames)
        pearson_patch = pearson(gated_patches)
        intra = (
            config.pearson_video_weight * pearson_video
            + config.pearson_frame_weight * pearson_frame
            + config.pearson_patch_weight * pearson_patch
        )
        return EERCFLossOutput(
            loss=inter + config.pearson_loss_weight * intra,
            inter_loss=inter,
            intra_loss=intra,
            weak_logits=weak,
            strong_logits=strong,
            logits=EERCFLogits(
                video_logits=video,
                weak_frame_logits=weak_frame,
                weak_patch_logits=weak_patch,
                strong_frame_logits=strong_frame,
                strong_patch_logits=strong_patch,
            ),
            pearson_video=pearson_video,
            pearson_frame=pearson_frame,
            pearson_patch=pearson_patch,
        )

    # ---------------------------------------------------------------------------------------------- contract

    def get_text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(batch_size, projection_dim)` text embeddings in the coarse score's space: `normalise(t) @ W_video`.

        Their dot product with `get_video_embeds` is the coarse logit before `exp(logit_scale)`, so a FAISS
        inner-product index over the video embeddings gives stage 1 directly.
        """
        return super().get_text_embeds(input_ids, attention_mask) @ self.video_logit_weight


__all__ = [
    "EERCFLogits",
    "EERCFLossOutput",
    "EERCFModel",
    "EERCFOutput",
    "EERCFPreTrainedModel",
    "EERCFVideoEncoding",
    "attention_pooled_logits",
    "pearson_penalty",
    "text_gated_pool",
    "weak_frame_logits",
]
