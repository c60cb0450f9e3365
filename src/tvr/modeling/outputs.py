"""Output dataclasses shared by every tvr retrieval model.

Naming: `*_features` are raw projected tower features (not normalised), `*_embeds` are the L2-normalised retrieval
embeddings (what `get_text_embeds` / `get_video_embeds` return and what a FAISS index stores).

Every tensor field of an encoding has the batch as dim 0, so encodings of several batches (or processes) can be
concatenated field by field (`concat_encodings`) before `model.similarity`. Methods needing more fields subclass
`TextEncoding` / `VideoEncoding`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from transformers.utils import ModelOutput


@dataclass
class TextEncoding(ModelOutput):
    """What `model.encode_text` returns.

    Args:
        text_features (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            Projected end-of-text feature of the CLIP text tower, not normalised (CLIP4Clip's `sequence_output`).
        attention_mask (`torch.LongTensor` of shape `(batch_size, max_words)`):
            The text padding mask, kept for heads that look at tokens.
    """

    text_features: torch.FloatTensor | None = None
    attention_mask: torch.LongTensor | None = None


@dataclass
class VideoEncoding(ModelOutput):
    """What `model.encode_video` returns.

    Args:
        frame_features (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            Projected per-frame CLS features of the CLIP vision tower, before any temporal head, not normalised
            (CLIP4Clip's `visual_output`).
        video_mask (`torch.LongTensor` of shape `(batch_size, num_frames)`):
            1 for real frames, 0 for padding.
        video_embeds (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
            L2-normalised pooled video embedding (after the temporal head for loose heads). A video with no valid
            frame gets the zero vector, hence similarity 0, never NaN.
    """

    frame_features: torch.FloatTensor | None = None
    video_mask: torch.LongTensor | None = None
    video_embeds: torch.FloatTensor | None = None


@dataclass
class RetrievalLossOutput(ModelOutput):
    """What a tvr retrieval model's `compute_loss` returns; methods with a loss of several terms subclass it.

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            The scalar to back-propagate; by default the symmetric contrastive loss `(CE(S) + CE(S^T)) / 2`.
    """

    loss: torch.FloatTensor | None = None


@dataclass
class RetrievalOutput(ModelOutput):
    """What a tvr retrieval model's `forward` returns.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `return_loss=True`):
            The model's training loss (`compute_loss`); by default the symmetric contrastive loss
            `(CE(S) + CE(S^T)) / 2` over the in-batch similarity matrix S.
        logits_per_text (`torch.FloatTensor` of shape `(text_batch_size, video_batch_size)`):
            Text-to-video similarity logits S.
        logits_per_video (`torch.FloatTensor` of shape `(video_batch_size, text_batch_size)`):
            S transposed.
        text_embeds (`torch.FloatTensor` of shape `(text_batch_size, projection_dim)`):
            L2-normalised text embeddings.
        video_embeds (`torch.FloatTensor` of shape `(video_batch_size, projection_dim)`):
            L2-normalised pooled video embeddings.
        text_encoding (`TextEncoding`): everything `similarity` used on the text side.
        video_encoding (`VideoEncoding`): everything `similarity` used on the video side.
        loss_output (`RetrievalLossOutput`, *optional*, returned when `return_loss=True`):
            What `compute_loss` returned: the loss and, for methods whose loss has several terms, its parts.
        text_model_output (`BaseModelOutputWithPooling`):
            The text tower's output (`hidden_states` / `attentions` with `output_hidden_states` /
            `output_attentions`), as transformers' `CLIPOutput.text_model_output`.
        vision_model_output (`BaseModelOutputWithPooling`):
            The vision tower's output per video: `last_hidden_state` `(batch, frames, tokens, vision_width)`,
            per-layer `hidden_states` / `attentions` when asked.
    """

    loss: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_encoding: TextEncoding | None = None
    video_encoding: VideoEncoding | None = None
    loss_output: RetrievalLossOutput | None = None
    text_model_output: ModelOutput | None = None
    vision_model_output: ModelOutput | None = None

    def to_tuple(self) -> tuple:
        return tuple(value.to_tuple() if isinstance(value, ModelOutput) else value for value in self.values())


def concat_encodings(encodings: list[ModelOutput]) -> ModelOutput:
    """Concatenate encodings of several batches field by field along the batch dim.

    Fields that are `None` in the first encoding stay `None`. Example: cache the encodings of all test batches,
    then `model.similarity(concat_encodings(texts), concat_encodings(videos))`.
    """
    if not encodings:
        raise ValueError("concat_encodings needs at least one encoding")
    first = encodings[0]
    merged = {
        field.name: torch.cat([getattr(encoding, field.name) for encoding in encodings])
        for field in fields(first)
        if getattr(first, field.name) is not None
    }
    return type(first)(**merged)


def slice_encoding(encoding: ModelOutput, start: int, end: int) -> ModelOutput:
    """Rows `start:end` of every field of an encoding (a block of texts or videos to score)."""
    return type(encoding)(**{name: value[start:end] for name, value in encoding.items()})


__all__ = [
    "TextEncoding",
    "VideoEncoding",
    "RetrievalLossOutput",
    "RetrievalOutput",
    "concat_encodings",
    "slice_encoding",
]
