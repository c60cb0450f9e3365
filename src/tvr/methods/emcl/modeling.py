# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""EMCL-Net (Jin et al., NeurIPS 2022) on a transformers image-text tower: text-conditioned frame pooling + joint EM
on text and video features.

Reference: github.com/jpthu17/EMCL (video_retrieval/EMCL-Net). A converted original checkpoint with the original's
initial EM bases gives the original similarity matrix (fp32, atol 1e-5; see tests/test_convert_emcl.py).

Pipeline for a block of `A` texts and `B` videos:
1. the CLIP text tower gives each caption's end-of-text feature `t_a`; the vision tower each frame's CLS feature,
   which the temporal head (seqTransf by default) turns into `v_bt`;
2. text-conditioned pooling: `w_abt = softmax_t(<t_a, v_bt> / temperature) * mask_bt`, `u_ab = sum_t w_abt v_bt`;
3. the EM module runs once on the stacked rows `[u_11 .. u_AB; t_1 .. t_A]` and adds `beta *` their reconstruction;
4. logits `exp(logit_scale) * cos(t'_a, u'_ab)`.

Because step 3 couples every row of a block, scores depend on which texts and videos are scored together. Training
uses the whole (gathered) batch as one block, as the original. Evaluation uses blocks of `config.eval_block_size`
(the original's hard-coded 32) texts x videos, in order: `similarity` does that blocking itself when given more
rows, and the evaluation harness calls it with blocks of that size, so both reproduce the original's matrix.

Differences from the reference, all deliberate:
- the EM bases are a buffer saved with the model (the original never saves them: a loaded checkpoint is evaluated
  with freshly seeded bases, which is what the converter reproduces, see `initial_em_bases`);
- the model runs in the dtype it is loaded in (fp32 by default; the EM always runs in fp32), the original keeps
  CLIP's linear weights in fp16 on GPU;
- `temporal_head="seqLSTM"` (never used for the paper's results) is CLIP4Clip's head; on a batch whose videos are all
  shorter than `num_frames` the original doubles the features of the trailing padded frames, which here keep their
  input value; padded frames take softmax mass in the pooling, so those scores can differ.
"""


from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from ...modeling.base import ImageTextRetrievalPreTrainedModel
from ...modeling.heads import build_loose_head
from ...modeling.outputs import TextEncoding, VideoEncoding
from ...modeling.pooling import masked_mean
from ...modeling.towers import ImageTextTower
from .configuration import EMCLConfig
from .em import EMReconstruction, initial_em_bases


def text_conditioned_pooling(
    text_features: torch.Tensor, frame_features: torch.Tensor, video_mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """EMCL's frame pooling: every text weighs the frames of every video by its similarity to them.

    `w[a, b, t] = softmax_t(<text_a, frame_bt> / temperature) * video_mask[b, t]` and
    `pooled[a, b] = sum_t w[a, b, t] * frame_bt`. As in the original, the softmax runs over all frames, padded
    ones included, and the masked weights are not renormalised: padded frames take softmax mass, which shrinks the
    pooled vector (renormalising changes the scores).

    Args:
        text_features: `(num_texts, dim)`, not normalised.
        frame_features: `(num_videos, num_frames, dim)`, not normalised.
        video_mask: `(num_videos, num_frames)`, 0/1.
        temperature: softmax temperature (the original's `--temp`, 3).

    Returns:
        `(num_texts, num_videos, dim)`.
    """
    weights = torch.softmax(torch.einsum("ad,btd->abt", text_features, frame_features) / temperature, dim=-1)
    weights = weights * video_mask.to(weights.dtype).unsqueeze(0)
    return torch.einsum("abt,btd->abd", weights, frame_features)


@dataclass
class EMCLVideoEncoding(VideoEncoding):
    """What `EMCLModel.encode_video` returns: `VideoEncoding` plus the temporal head's output.

    Args:
        temporal_features (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            Frame features after the temporal head (seqTransf + residual), not normalised: what the text-conditioned
            pooling weighs.
    """

    temporal_features: torch.FloatTensor | None = None


class EMCLPreTrainedModel(ImageTextRetrievalPreTrainedModel):
    """Weight init and loading conventions for EMCL (`ImageTextRetrievalPreTrainedModel`'s, plus the EM bases)."""

    config: EMCLConfig
    base_model_prefix = "emcl"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, EMReconstruction):
            init.copy_(module.bases, initial_em_bases(module.num_bases, seed=self.config.em_bases_seed))


class EMCLModel(EMCLPreTrainedModel):
    """EMCL-Net: an image-text tower (`self.clip`), a temporal head (`self.temporal`), text-conditioned frame pooling and
    the EM module (`self.em`, bases in the buffer `em.bases`).

    Example:

    ```python
    >>> model = EMCLModel.from_image_text_model("openai/clip-vit-base-patch32")
    >>> text = model.encode_text(input_ids, attention_mask)
    >>> video = model.encode_video(pixel_values_videos, video_mask)
    >>> logits = model.similarity(text, video)  # (num_texts, num_videos), EM in blocks of config.eval_block_size
    ```
    """

    # The original all-gathers features across processes and runs pooling + EM on the global batch.
    gather_for_loss = True

    def __init__(self, config: EMCLConfig):
        super().__init__(config)
        self.clip = ImageTextTower(config)
        head = "meanP" if config.temporal_head == "none" else config.temporal_head  # meanP's head is the identity
        self.temporal = build_loose_head(head, config.temporal_config)
        self.em = EMReconstruction(
            num_bases=config.em_num_bases,
            num_stages=config.em_num_stages,
            temperature=config.em_temperature,
            beta=config.em_beta,
            momentum=config.em_momentum,
            seed=config.em_bases_seed,
        )
        self.post_init()

    @torch.no_grad()
    def init_from_tower(self) -> None:
        """Initialise the parts EMCL adds from the tower weights in `self.clip`, as the original does from CLIP.

        Tower weights are copied; seqTransf takes its frame positions from the text tower's positions and its layers
        from its first text layers; the EM bases are `initial_em_bases(em_num_bases, seed=em_bases_seed)`.
        """
        super().init_from_tower()
        self.temporal.init_from_text_tower(self.clip.text_model)

    def set_em_bases(self, bases: torch.Tensor) -> None:
        """Set the EM bases, `(1, em_num_bases)` or `(em_num_bases,)`; e.g. those an original run was evaluated with."""
        self.em.set_bases(bases)

    # ------------------------------------------------------------------------------------------------- encoding
    def encode_video(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> EMCLVideoEncoding:
        """Encode videos.

        Args:
            pixel_values_videos: `(batch_size, num_frames, 3, image_size, image_size)` normalised frames; padded
                frames are encoded too (the original feeds zeros), they only matter through the pooling softmax.
            video_mask: `(batch_size, num_frames)`, 1 for real frames; defaults to all ones.

        Returns:
            An `EMCLVideoEncoding`. Its `video_embeds` (normalised masked mean of `temporal_features`) is not what
            EMCL scores with; it is a text-independent first-stage embedding for an index, to re-rank with
            `similarity`.
        """
        video_mask = self._check_video(pixel_values_videos, video_mask)
        frame_features = self.clip.encode_frames(pixel_values_videos).pooler_output
        temporal_features = self.temporal(frame_features, video_mask)
        return EMCLVideoEncoding(
            frame_features=frame_features,
            video_mask=video_mask,
            video_embeds=F.normalize(masked_mean(temporal_features, video_mask), dim=-1),
            temporal_features=temporal_features,
        )

    def _check_num_frames(self, num_frames: int) -> None:
        positions = self.config.temporal_config.max_position_embeddings
        if self.config.temporal_head == "seqTransf" and num_frames > positions:
            raise ValueError(f"{num_frames} frames per video exceed the seqTransf head's {positions} positions")

    # ------------------------------------------------------------------------------------------------- scoring
    def block_cosine(
        self, text_features: torch.Tensor, temporal_features: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """EMCL's cosine similarity of one block, computed jointly (the original's `get_similarity_logits`).

        Args:
            text_features: `(num_texts, dim)`.
            temporal_features: `(num_videos, num_frames, dim)`.
            video_mask: `(num_videos, num_frames)`.

        Returns:
            `(num_texts, num_videos)` cosine similarities after the EM; in training this call updates the EM bases.
        """
        pooled = text_conditioned_pooling(
            text_features, temporal_features, video_mask, self.config.frame_pooling_temperature
        )
        num_texts, num_videos, dim = pooled.shape
        # One EM over all rows of the block: the video rows first, then the text rows (the original's order).
        rows = self.em(torch.cat([pooled.reshape(num_texts * num_videos, dim), text_features.to(pooled.dtype)]))
        pooled = F.normalize(rows[: num_texts * num_videos].view(num_texts, num_videos, dim), dim=-1)
        text = F.normalize(rows[num_texts * num_videos :], dim=-1)
        return torch.einsum("ad,abd->ab", text, pooled)

    def similarity(
        self, text_encoding: TextEncoding, video_encoding: EMCLVideoEncoding, block_size: int | None = None
    ) -> torch.Tensor:
        """`(num_texts, num_videos)` logits: the tower's scaled cosine (`exp(logit_scale) * cosine` for CLIP), the
        cosine after pooling and EM.

        In training the whole input is one block (the original's loss over the global batch) and the EM bases
        move. In evaluation the EM runs per block of `block_size` texts x `block_size` videos, in order, like the
        original's evaluation loop; the result depends on the block size.

        Args:
            text_encoding: from `encode_text`.
            video_encoding: from `encode_video`.
            block_size: evaluation block size; default `config.eval_block_size` (None: everything in one block).
        """
        if not isinstance(video_encoding, EMCLVideoEncoding) or video_encoding.temporal_features is None:
            raise ValueError("EMCLModel.similarity needs the EMCLVideoEncoding that EMCLModel.encode_video returns")
        text_features = text_encoding.text_features
        temporal_features, video_mask = video_encoding.temporal_features, video_encoding.video_mask
        block_size = self.config.eval_block_size if block_size is None else block_size
        if self.training or block_size is None:
            cosine = self.block_cosine(text_features, temporal_features, video_mask)
        else:
            cosine = torch.cat(
                [
                    torch.cat(
                        [
                            self.block_cosine(texts, frames, mask)
                            for frames, mask in zip(temporal_features.split(block_size), video_mask.split(block_size))
                        ],
                        dim=1,
                    )
                    for texts in text_features.split(block_size)
                ],
                dim=0,
            )
        return self.clip.scale_logits(cosine)

    def score_gallery(self, text_encoding, video_encoding, block_size=None, progress=False, **similarity_kwargs):
        """The EM runs per block of `block_size` texts x `block_size` videos (default `config.eval_block_size`, the
        original's 32; `None` in the config: one block), in order, as the original evaluates: scores depend on it."""
        block_size = block_size or self.config.eval_block_size
        return self._score_blocks(
            text_encoding, video_encoding, block_size, block_size, progress, block_size=block_size, **similarity_kwargs
        )

    def batch_similarity(self, text_encoding: TextEncoding, video_encoding: EMCLVideoEncoding) -> torch.Tensor:
        """A batch of pairs scored as one EM block, as the original's training loss (`forward` and `compute_loss`
        use it; caption i belongs to video i)."""
        batch = max(text_encoding.text_features.shape[0], video_encoding.video_mask.shape[0])
        return self.similarity(text_encoding, video_encoding, block_size=batch)


__all__ = ["EMCLModel", "EMCLPreTrainedModel", "EMCLVideoEncoding", "text_conditioned_pooling"]
