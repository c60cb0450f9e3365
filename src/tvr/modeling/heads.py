"""CLIP4Clip's similarity heads and the temporal transformer they (and EMCL / EERCF) share.

Loose heads turn per-frame features into per-frame features that are then pooled (`meanP`, `seqLSTM`,
`seqTransf`); the tight head (`tightTransf`) scores a (text, video) pair with a cross encoder.

Every transformer here is a stack of transformers' `CLIPEncoderLayer` -- the plain pre-LN layer (separate q/k/v
projections, MLP with the configured activation) that CLIP, MetaCLIP 2 and SigLIP text towers all share parameter
for parameter -- configured by a `TemporalTransformerConfig` whose LayerNorm eps is 1e-12, as in CLIP4Clip's
`module_cross`. So the layers copy any of those text towers' layers verbatim at initialisation, and get SDPA
attention and gradient checkpointing for free.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.models.clip.modeling_clip import CLIPEncoderLayer

from .configuration_base import TemporalTransformerConfig


def additive_key_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Attention mask that hides padded keys, shaped for transformers' attention functions.

    Args:
        mask: `(batch_size, seq_len)`, 1 for positions to attend to.
        dtype: dtype of the attention scores.

    Returns:
        `(batch_size, 1, 1, seq_len)`: 0 for kept keys, the dtype's minimum for hidden ones. A row without any kept
        key attends to every key: the original adds -1e6 to all of its scores, which leaves the softmax unchanged,
        and this way half precision cannot turn it into NaN.
    """
    keep = mask.bool()
    keep = keep | ~keep.any(dim=-1, keepdim=True)
    additive = torch.zeros(keep.shape, dtype=dtype, device=mask.device)
    return additive.masked_fill(~keep, torch.finfo(dtype).min)[:, None, None, :]


class TemporalTransformer(nn.Module):
    """Bidirectional transformer over a short sequence (frames, or a text token + frames) with key padding.

    Parameter names are CLIP's (`layers.{i}.self_attn.q_proj`, `layers.{i}.layer_norm1`, `layers.{i}.mlp.fc1`, ...).
    """

    def __init__(self, config: TemporalTransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList([CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor, first_token_only: bool = False) -> torch.Tensor:
        """`hidden_states` `(batch_size, seq_len, hidden_size)`, `mask` `(batch_size, seq_len)` -> same shape.

        `first_token_only`: return only position 0, `(batch_size, 1, hidden_size)`. The last layer then computes
        keys and values of every position but queries, attention output and MLP of position 0 alone: the same
        values (up to rounding) for about a fifth less work in a 4-layer cross encoder that pools its first token.
        """
        attention_mask = additive_key_mask(mask, hidden_states.dtype)
        layers = self.layers[:-1] if first_token_only else self.layers
        for layer in layers:
            hidden_states = layer(hidden_states, attention_mask)
        if first_token_only:
            return self._first_token_of_layer(self.layers[-1], hidden_states, attention_mask)
        return hidden_states

    def _first_token_of_layer(self, layer: CLIPEncoderLayer, hidden_states: torch.Tensor,
                              attention_mask: torch.Tensor) -> torch.Tensor:
        """`layer(hidden_states, attention_mask)[:, :1]`, computing only what position 0 depends on."""
        attention = layer.self_attn
        batch_size, seq_len, _ = hidden_states.shape
        normed = layer.layer_norm1(hidden_states)

        def heads(states: torch.Tensor) -> torch.Tensor:
            return states.view(batch_size, -1, attention.num_heads, attention.head_dim).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(attention.q_proj(normed[:, :1])), heads(attention.k_proj(normed)), heads(attention.v_proj(normed)),
            attn_mask=attention_mask, dropout_p=attention.dropout if self.training else 0.0, scale=attention.scale)
        first = hidden_states[:, :1] + attention.out_proj(attended.transpose(1, 2).reshape(batch_size, 1, -1))
        return first + layer.mlp(layer.layer_norm2(first))

    @torch.no_grad()
    def copy_text_layers(self, text_model: PreTrainedModel) -> None:
        """Initialise layer i from the text tower's layer i (the original's "cut from beginning").

        Raises:
            ValueError: when the tower has fewer layers, or layers of another width or MLP size.
        """
        text_layers = text_model.encoder.layers
        if len(self.layers) > len(text_layers):
            raise ValueError(
                f"cannot initialise {len(self.layers)} temporal layers from a text tower with {len(text_layers)}"
            )
        for index, (layer, text_layer) in enumerate(zip(self.layers, text_layers)):
            shapes = {name: tuple(value.shape) for name, value in layer.state_dict().items()}
            text_shapes = {name: tuple(value.shape) for name, value in text_layer.state_dict().items()}
            if shapes != text_shapes:
                raise ValueError(
                    f"cannot initialise temporal layer {index} from text layer {index} of {type(text_model).__name__}: "
                    f"parameter shapes differ ({_shape_difference(shapes, text_shapes)}); give temporal_config the "
                    "text tower's width and MLP size, or train the temporal layers from random init"
                )
            layer.load_state_dict(text_layer.state_dict())


def _shape_difference(shapes: dict, text_shapes: dict) -> str:
    names = sorted(set(shapes) | set(text_shapes))
    differing = [name for name in names if shapes.get(name) != text_shapes.get(name)]
    return ", ".join(f"{name}: {shapes.get(name)} vs {text_shapes.get(name)}" for name in differing)


@torch.no_grad()
def _copy_positions(embedding: nn.Embedding, text_model: PreTrainedModel) -> None:
    source = text_model.embeddings.position_embedding.weight
    if source.shape != embedding.weight.shape:
        raise ValueError(
            f"cannot initialise position embeddings of shape {tuple(embedding.weight.shape)} from the text tower's "
            f"positions of shape {tuple(source.shape)} ({type(text_model).__name__})"
        )
    embedding.weight.copy_(source)


class MeanPHead(nn.Module):
    """`meanP`: parameter-free, frames are pooled as they are."""

    def forward(self, frame_features: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        return frame_features

    def init_from_text_tower(self, text_model: PreTrainedModel) -> None:
        """Nothing to initialise."""


class SeqLSTMHead(nn.Module):
    """`seqLSTM`: a one-layer LSTM over the valid frames, residual to the input."""

    def __init__(self, config: TemporalTransformerConfig):
        super().__init__()
        self.lstm = nn.LSTM(config.hidden_size, config.hidden_size, num_layers=1, batch_first=True)

    def forward(self, frame_features: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """`frame_features` `(batch_size, num_frames, dim)`, `video_mask` `(batch_size, num_frames)` -> same shape.

        The LSTM reads the first `count_nonzero(video_mask)` frames (the valid frames come first); later positions
        keep their input (they are masked when pooling).
        """
        num_frames = frame_features.shape[1]
        # A video without valid frames still runs one step so packing works; pooling masks it out anyway.
        lengths = video_mask.bool().sum(dim=-1).clamp(min=1).cpu()
        packed = pack_padded_sequence(frame_features, lengths, batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=num_frames)
        return output + frame_features

    def init_from_text_tower(self, text_model: PreTrainedModel) -> None:
        """The LSTM keeps its random init (the original's CLIP-initialised `frame_position_embeddings` is unused)."""


class SeqTransfHead(nn.Module):
    """`seqTransf`: frame position embeddings + temporal transformer with key padding, residual to the input."""

    def __init__(self, config: TemporalTransformerConfig):
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.transformer = TemporalTransformer(config)

    def forward(self, frame_features: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
        """`frame_features` `(batch_size, num_frames, dim)`, `video_mask` `(batch_size, num_frames)` -> same shape."""
        positions = self.frame_position_embeddings.weight[: frame_features.shape[1]]
        return self.transformer(frame_features + positions, video_mask) + frame_features

    def init_from_text_tower(self, text_model: PreTrainedModel) -> None:
        """Frame positions from the text tower's positions, layer i from its text layer i."""
        _copy_positions(self.frame_position_embeddings, text_model)
        self.transformer.copy_text_layers(text_model)


class TightTransfHead(nn.Module):
    """`tightTransf`: a cross encoder over [text feature; frame features] that outputs one score per pair.

    Position embeddings (no token types, no embedding LayerNorm) and dropout, the temporal transformer with the
    text token always kept, then a pooler (LayerNorm, Linear, QuickGELU) on the text token and a Linear to one
    score. There is no logit scale.
    """

    def __init__(self, config: TemporalTransformerConfig):
        super().__init__()
        hidden_size = config.hidden_size
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.transformer = TemporalTransformer(config)
        self.pooler_norm = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.pooler_dense = nn.Linear(hidden_size, hidden_size)
        self.pooler_activation = ACT2FN["quick_gelu"]
        self.similarity_dense = nn.Linear(hidden_size, 1)
        self.config = config

    def forward(
        self, text_features: torch.Tensor, frame_features: torch.Tensor, video_mask: torch.Tensor
    ) -> torch.Tensor:
        """Score aligned pairs.

        Args:
            text_features: `(num_pairs, dim)`.
            frame_features: `(num_pairs, num_frames, dim)`.
            video_mask: `(num_pairs, num_frames)`.

        Returns:
            `(num_pairs,)` scores.
        """
        tokens = torch.cat([text_features.unsqueeze(1), frame_features], dim=1)
        tokens = self.dropout(tokens + self.position_embeddings.weight[: tokens.shape[1]])
        mask = torch.cat([torch.ones_like(video_mask[:, :1]), video_mask], dim=1)
        text_token = self.transformer(tokens, mask, first_token_only=True)[:, 0]  # the pooler reads only it
        pooled = self.pooler_activation(self.pooler_dense(self.pooler_norm(text_token)))
        return self.similarity_dense(pooled).squeeze(-1)

    def score_all_pairs(
        self, text_features: torch.Tensor, frame_features: torch.Tensor, video_mask: torch.Tensor,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Score every text against every video, at most `chunk_size` pairs per cross-encoder call.

        Args:
            text_features: `(num_texts, dim)`.
            frame_features: `(num_videos, num_frames, dim)`.
            video_mask: `(num_videos, num_frames)`.
            chunk_size: pairs per call; bounds activation memory (num_pairs * (1 + num_frames) tokens). `None`:
                as many as fit the device's budget (:func:`pair_chunk_size`).

        Returns:
            `(num_texts, num_videos)` scores.
        """
        num_texts, num_videos = text_features.shape[0], frame_features.shape[0]
        if chunk_size is None:
            compute_dtype = frame_features.dtype
            if torch.is_autocast_enabled(frame_features.device.type):
                compute_dtype = torch.get_autocast_dtype(frame_features.device.type)
            chunk_size = pair_chunk_size(self.config, 1 + frame_features.shape[1], frame_features.device,
                                         compute_dtype)
        text_index = torch.arange(num_texts, device=text_features.device).repeat_interleave(num_videos)
        video_index = torch.arange(num_videos, device=text_features.device).repeat(num_texts)
        scores = [
            self(text_features[texts], frame_features[videos], video_mask[videos])
            for texts, videos in zip(text_index.split(chunk_size), video_index.split(chunk_size))
        ]
        return torch.cat(scores).view(num_texts, num_videos)

    def init_from_text_tower(self, text_model: PreTrainedModel) -> None:
        """Positions from the text tower's positions, layer i from its text layer i; pooler and score layer stay
        random."""
        _copy_positions(self.position_embeddings, text_model)
        self.transformer.copy_text_layers(text_model)


# Working set of one cross-encoder call. On a CPU, calls that stay within the caches run fastest (ViT-B/32 head,
# 2 cores: 128-256 pairs take 8.6 s per 4,000 pairs, 4,096 pairs 10.6 s); on a GPU, a share of the free memory.
CPU_PAIR_BUDGET_BYTES = 48 * 2**20
GPU_FREE_MEMORY_SHARE = 0.25
MIN_PAIR_CHUNK = 64


def pair_chunk_size(config: TemporalTransformerConfig, num_tokens: int, device: torch.device | str,
                    dtype: torch.dtype = torch.float32) -> int:
    """Pairs per cross-encoder call that fit the device's memory budget.

    One pair holds, per layer, about `num_tokens * (6 * hidden + 2 * intermediate)` activation values (hidden
    states, LayerNorm, q / k / v, attention output, MLP in and out) plus `heads * num_tokens**2` attention scores.
    The budget is `GPU_FREE_MEMORY_SHARE` of the free memory on a CUDA device, else `CPU_PAIR_BUDGET_BYTES`.
    """
    device = torch.device(device)
    values = num_tokens * (6 * config.hidden_size + 2 * config.intermediate_size)
    values += config.num_attention_heads * num_tokens**2
    pair_bytes = values * torch.empty((), dtype=dtype).element_size()
    if device.type == "cuda":
        budget = torch.cuda.mem_get_info(device)[0] * GPU_FREE_MEMORY_SHARE
    else:
        budget = CPU_PAIR_BUDGET_BYTES
    return max(MIN_PAIR_CHUNK, int(budget // pair_bytes))


LOOSE_HEADS = {"meanP": MeanPHead, "seqLSTM": SeqLSTMHead, "seqTransf": SeqTransfHead}


def build_loose_head(sim_header: str, config: TemporalTransformerConfig) -> nn.Module:
    """The loose head named `sim_header` ("meanP", "seqLSTM" or "seqTransf")."""
    if sim_header not in LOOSE_HEADS:
        raise ValueError(f"unknown loose sim_header {sim_header!r}; expected one of {sorted(LOOSE_HEADS)}")
    head = LOOSE_HEADS[sim_header]
    return head() if head is MeanPHead else head(config)


__all__ = [
    "LOOSE_HEADS",
    "MeanPHead",
    "SeqLSTMHead",
    "SeqTransfHead",
    "TemporalTransformer",
    "TightTransfHead",
    "additive_key_mask",
    "build_loose_head",
    "pair_chunk_size",
]
