# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""The base every tvr retrieval model subclasses: init conventions and the model contract.

A method defines `__init__` (with `self.clip = ImageTextTower(config)`: the image-text tower, whatever its family;
the attribute keeps its tvr 0.1 name so saved folders and converted checkpoints load unchanged), `encode_video`,
`similarity` and, where it adds initialisable parts, `init_from_tower`. The base gives it `from_image_text_model`
(alias `from_clip`), `encode_text`, the input checks, `get_text_features`, `get_video_features`, `compute_loss`,
`forward`, `logit_scale`, the parameter declaration (`parameter_roles`, `freeze_pretrained_layers`) and gallery
scoring (`score_gallery`). The hooks a method may override:

- `_check_num_frames(num_frames)`: the method's limit on frames per video (e.g. a head's positions);
- `batch_similarity(text_encoding, video_encoding, **similarity_kwargs)`: how `forward` and `compute_loss` score a
  batch of pairs (default `similarity`; EMCL scores the batch as one EM block);
- `compute_loss(text_encoding, video_encoding, logits_per_text=None)`: the training loss (default the pair loss of
  `config.loss_type` on `batch_similarity`; EERCF has its own);
- `score_gallery(text_encoding, video_encoding, ...)`: how a whole gallery is scored (blocks, two stages, pair
  chunks); the evaluation harness and the index only call this;
- `pretrained_modules`: the sub-modules holding pretrained weights (default the tower);
- `gather_for_loss`: whether training gathers encodings across processes before `compute_loss`.
"""

from __future__ import annotations

import copy
import os
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import can_return_tuple

from .outputs import RetrievalLossOutput, RetrievalOutput, TextEncoding, VideoEncoding, slice_encoding
from .pooling import masked_mean
from .towers import LOSSES, TOWER_FAMILIES, ImageTextTower

ParameterRole = Literal["pretrained", "new", "frozen"]
DEFAULT_GALLERY_BLOCK = 1024  # texts x videos per `similarity` call when a method sets no block of its own


class ImageTextRetrievalPreTrainedModel(PreTrainedModel):
    """Weight init, loading conventions and the shared half of the model contract for tvr's methods.

    Subclasses set `config: <MethodConfig>` (a `ImageTextRetrievalConfig`: `tower_type`, `text_config`, `vision_config`,
    `projection_dim`, `logit_scale_init_value`, `linear_patch`, `loss_type` and usually `temporal_config`) and
    `base_model_prefix`.
    """

    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = [
        "CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings",
        "MetaClip2TextEmbeddings", "MetaClip2EncoderLayer", "MetaClip2VisionEmbeddings",
        "SiglipTextEmbeddings", "SiglipEncoderLayer", "SiglipVisionEmbeddings",
    ]  # fmt: skip
    # Whether training gathers encodings across processes before the loss (the originals do, except tightTransf).
    gather_for_loss: bool = True
    # Sub-modules whose weights come pretrained (trained at lr * coef_lr); everything else the method adds is new.
    pretrained_modules: tuple[str, ...] = ("clip",)

    def __init__(self, config):
        super().__init__(config)
        # The temporal / cross layers have no PreTrainedModel of their own to resolve their attention implementation:
        # they follow the model's.
        temporal_config = getattr(config, "temporal_config", None)
        if temporal_config is not None and temporal_config._attn_implementation is None:
            temporal_config._attn_implementation_internal = config._attn_implementation

    @classmethod
    def is_custom_code(cls) -> bool:
        """Not custom code for weight init: `_init_weights` uses `transformers.initialization`, which respects what
        is loaded. (transformers otherwise skips modules without parameters of their own -- the towers'
        `CLIPAttention` / `CLIPMLP` -- when it initialises missing weights, so they differ from `__init__`.)"""
        return cls.is_remote_code()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The towers are PreTrainedModels and initialise themselves; this covers what tvr adds around them:
        # N(0, initializer_range) Linear/Embedding/Conv, zero biases, LayerNorm 1/0 (as CLIP4Clip's init_weights).
        super()._init_weights(module)
        if isinstance(module, ImageTextTower):
            if module.family.has_projections:
                init.normal_(module.text_projection.weight, std=module.text_projection.in_features**-0.5)
                init.normal_(module.visual_projection.weight, std=module.visual_projection.in_features**-0.5)
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
            if module.family.has_logit_bias:
                init.constant_(module.logit_bias, self.config.logit_bias_init_value)
        elif isinstance(module, nn.LSTM):
            # PyTorch's default LSTM init, which the original keeps (transformers' default is Xavier).
            bound = module.hidden_size**-0.5
            for parameter in module.parameters():
                init.uniform_(parameter, -bound, bound)

    # ------------------------------------------------------------------------------------------- construction

    @classmethod
    def from_image_text_model(
        cls, image_text_model: str | os.PathLike | PreTrainedModel, **config_overrides
    ) -> "ImageTextRetrievalPreTrainedModel":
        """A model on a transformers image-text model's towers, initialised the way the method's original
        initialises it from CLIP.

        The config takes the model's type (`tower_type`), text/vision configs, projection dim and initial logit
        scale; its weights are copied into `self.clip`, then `init_from_tower` initialises what the method adds
        (see each method's).

        Args:
            image_text_model: a `CLIPModel`, `MetaClip2Model` or `SiglipModel` (SigLIP 2 fixed-resolution
                checkpoints included), or a Hub id / folder that `AutoModel.from_pretrained` loads as one.
            **config_overrides: other fields of the method's config, e.g. `max_frames=12`,
                `temporal_config={"num_hidden_layers": 4}`.

        Example:

        ```python
        >>> model = CLIP4ClipModel.from_image_text_model("google/siglip-base-patch16-224", sim_header="seqTransf")
        ```
        """
        if not isinstance(image_text_model, PreTrainedModel):
            image_text_model = AutoModel.from_pretrained(image_text_model)
        source = image_text_model.config
        if source.model_type not in TOWER_FAMILIES:
            raise ValueError(
                f"{type(image_text_model).__name__} (model_type {source.model_type!r}) is not a supported image-text "
                f"model; expected one of {sorted(TOWER_FAMILIES)}"
            )
        family = TOWER_FAMILIES[source.model_type]
        tower_fields = {
            "tower_type": source.model_type,
            "text_config": copy.deepcopy(source.text_config),
            "vision_config": copy.deepcopy(source.vision_config),
            # towers without projections pool straight into the vision width (SigLIP's text head matches it)
            "projection_dim": source.projection_dim if family.has_projections else source.vision_config.hidden_size,
        }
        if hasattr(source, "logit_scale_init_value"):
            tower_fields["logit_scale_init_value"] = float(source.logit_scale_init_value)
        model = cls(cls.config_class(**tower_fields, **config_overrides))
        model.clip.load_image_text_state_dict(image_text_model.state_dict())
        model.init_from_tower()
        return model

    @classmethod
    def from_clip(cls, clip: str | os.PathLike | PreTrainedModel, **config_overrides) -> "ImageTextRetrievalPreTrainedModel":
        """Alias of `from_image_text_model` (tvr 0.1's name; any supported image-text model works)."""
        return cls.from_image_text_model(clip, **config_overrides)

    @torch.no_grad()
    def init_from_tower(self) -> None:
        """Initialise the parts the method adds from the tower weights in `self.clip`; here the 3d patch embedding
        (equal to the 2d one), subclasses extend it."""
        self.clip.inflate_patch_embedding()

    @property
    def scores_by_embedding_product(self) -> bool:
        """Whether `similarity` is the tower's scaled inner product of the normalised `text_features` with
        `video_embeds` and depends on nothing else of either encoding. Zero-shot classification then ensembles a
        class's prompts in embedding space (CLIP's averaging), else it averages the prompts' logits
        (`tvr.evaluation.zero_shot.class_logits`). Default `False`, right for any model; methods that qualify say so."""
        return False

    @property
    def logit_scale(self) -> nn.Parameter:
        """The tower's log temperature (`clip.logit_scale`); the training loop clamps it to at most ln(100)."""
        return self.clip.logit_scale

    def retrieval_loss(self, logits_per_text: torch.Tensor) -> torch.Tensor:
        """The pair loss of `config.loss_type` on a `(batch, batch)` matrix (softmax contrastive or sigmoid)."""
        return LOSSES[self.config.loss_type](logits_per_text)

    # ------------------------------------------------------------------------------------------- parameters

    def freeze_pretrained_layers(self, freeze_layer_num: int) -> list[str]:
        """Freeze the tower's embeddings and its layers below `freeze_layer_num` (`-1`: nothing); see
        `ImageTextTower.freeze_lower_layers`. Returns the frozen parameter names (relative to the model)."""
        return [f"clip.{name}" for name in self.clip.freeze_lower_layers(freeze_layer_num)]

    def parameter_roles(self) -> dict[str, ParameterRole]:
        """Every parameter's role for the optimiser, by name: `"frozen"` (no gradient), `"pretrained"` (in
        `pretrained_modules`: trained at `lr * coef_lr`) or `"new"` (trained at `lr`).

        Adapters that `peft` injects into pretrained modules (LoRA matrices, `modules_to_save` copies, prompt
        tokens) are new: they start from scratch, whatever module they sit in.
        """
        adapter_ids = _peft_adapter_parameter_ids(self)
        pretrained_ids = {
            id(parameter) for name in self.pretrained_modules for parameter in self.get_submodule(name).parameters()
        }
        roles = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                roles[name] = "frozen"
            elif id(parameter) in pretrained_ids and id(parameter) not in adapter_ids:
                roles[name] = "pretrained"
            else:
                roles[name] = "new"
        return roles

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
        return self._encode_text(input_ids, attention_mask)[0]

    def _encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **recording
    ) -> tuple[TextEncoding, BaseModelOutputWithPooling]:
        """`encode_text` and the text tower's output (`**recording`: its `output_hidden_states` /
        `output_attentions`, recorded by the text model itself)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch_size, max_words), got shape {tuple(input_ids.shape)}")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        text_output = self.clip.encode_text(input_ids, attention_mask, **recording)
        return TextEncoding(text_features=text_output.pooler_output, attention_mask=attention_mask), text_output

    def _encode_video(
        self,
        pixel_values_videos: torch.Tensor,
        video_mask: torch.Tensor | None,
        output_hidden_states: bool | list[int],
        output_attentions: bool,
    ) -> tuple[VideoEncoding, BaseModelOutputWithPooling | None]:
        """`encode_video` under the vision tower's output recording (`ImageTextTower.record_frames`), and the vision
        tower's output per video (`None` for a method that does not run frames through the stock layers)."""
        return self.clip.record_frames(
            lambda: self.encode_video(pixel_values_videos, video_mask),
            num_frames=pixel_values_videos.shape[1] if pixel_values_videos.dim() == 5 else 1,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )

    def encode_video(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> VideoEncoding:
        raise NotImplementedError(f"{type(self).__name__} must define encode_video")

    def similarity(self, text_encoding: TextEncoding, video_encoding: VideoEncoding) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define similarity")

    def get_input_embeddings(self) -> nn.Module:
        """The text tower's token embedding."""
        return self.clip.text_model.embeddings.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.clip.text_model.embeddings.token_embedding = value

    def _output_flags(self, output_hidden_states: bool | None, output_attentions: bool | None) -> tuple[bool, bool]:
        config = self.config
        return (
            config.output_hidden_states if output_hidden_states is None else output_hidden_states,
            config.output_attentions if output_attentions is None else output_attentions,
        )

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        """The text tower's output for captions, as transformers' `CLIPModel.get_text_features` gives it.

        Returns:
            `BaseModelOutputWithPooling`: `pooler_output` `(batch_size, projection_dim)` is the method's text
            feature (`encode_text(...).text_features`: projected, not normalised); `last_hidden_state`
            `(batch_size, max_words, text_width)`; `hidden_states` / `attentions` of the text tower when asked.
            For the normalised vectors a vector index stores, use `get_text_embeds`.
        """
        hidden_states, attentions = self._output_flags(output_hidden_states, output_attentions)
        text_encoding, text_output = self._encode_text(
            input_ids, attention_mask, output_hidden_states=hidden_states, output_attentions=attentions
        )
        return BaseModelOutputWithPooling(
            last_hidden_state=text_output.last_hidden_state,
            pooler_output=text_encoding.text_features,
            hidden_states=text_output.hidden_states,
            attentions=text_output.attentions,
        )

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        video_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        """The vision tower's output for videos, in the layout of transformers' `get_video_features`.

        Returns:
            `BaseModelOutputWithPooling`: `pooler_output` `(batch_size, projection_dim)` is the mean over valid
            frames of the projected frame features (`encode_video(...).frame_features`, not normalised, before the
            method's temporal head; a method without per-frame features gives its `video_features`);
            `last_hidden_state` `(batch_size, num_frames, num_tokens, vision_width)`, the
            last vision layer's output per frame; `hidden_states` / `attentions` per frame when asked. For the
            method's own normalised video embedding (what a vector index stores), use `get_video_embeds`.
        """
        video_encoding, vision = self._encode_video(
            pixel_values_videos, video_mask, *self._output_flags(output_hidden_states, output_attentions)
        )
        frame_features = getattr(video_encoding, "frame_features", None)
        if frame_features is not None:
            pooled = masked_mean(frame_features, video_encoding.video_mask)
        else:  # a method with its own vision loop and no per-frame features (DAVRL): its video feature
            pooled = video_encoding.video_features
        vision = vision or BaseModelOutputWithPooling()
        return BaseModelOutputWithPooling(
            last_hidden_state=vision.last_hidden_state,
            pooler_output=pooled,
            hidden_states=vision.hidden_states,
            attentions=vision.attentions,
        )

    def get_text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(batch_size, projection_dim)` L2-normalised text embeddings in the space `get_video_embeds` lives in:
        their dot products rank videos as the method's first stage does (what `VideoIndex` queries with)."""
        return F.normalize(self.encode_text(input_ids, attention_mask).text_features, dim=-1)

    def get_video_embeds(
        self, pixel_values_videos: torch.Tensor, video_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`(batch_size, projection_dim)` L2-normalised pooled video embeddings (`VideoEncoding.video_embeds`, what
        `VideoIndex` stores)."""
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

        Default: the pair loss of `config.loss_type` (symmetric contrastive, or SigLIP's sigmoid loss) on
        `batch_similarity`. Methods with their own loss override it and
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
        return RetrievalLossOutput(loss=self.retrieval_loss(logits_per_text))

    @torch.no_grad()
    def score_gallery(
        self,
        text_encoding: TextEncoding,
        video_encoding: VideoEncoding,
        block_size: int | None = None,
        progress: bool = False,
        **similarity_kwargs,
    ) -> torch.Tensor:
        """Score every text against a whole gallery of videos, the way the method is evaluated.

        The evaluation harness, the index and the pipelines call only this; a method decides here how a gallery is
        scored (EMCL: EM blocks; EERCF: two stages over the whole gallery; tightTransf: bounded pair chunks).
        Default: `similarity` on blocks of `block_size` texts x `block_size` videos, in order.

        Args:
            text_encoding: from `encode_text`, `(num_texts, ...)`.
            video_encoding: from `encode_video`, `(num_videos, ...)`: the whole gallery.
            block_size: texts and videos per `similarity` call; default the method's own (1024 here).
            progress: show a progress bar over the text blocks.
            **similarity_kwargs: passed to `similarity`.

        Returns:
            `(num_texts, num_videos)` float32 scores on CPU.
        """
        return self._score_blocks(
            text_encoding, video_encoding, block_size or DEFAULT_GALLERY_BLOCK, block_size or DEFAULT_GALLERY_BLOCK,
            progress, **similarity_kwargs,
        )

    def _score_blocks(
        self,
        text_encoding: TextEncoding,
        video_encoding: VideoEncoding,
        text_block: int | None,
        video_block: int | None,
        progress: bool = False,
        **similarity_kwargs,
    ) -> torch.Tensor:
        """`similarity` over blocks of `text_block` texts x `video_block` videos, in order (`None`: all at once)."""
        num_texts, num_videos = _num_rows(text_encoding), _num_rows(video_encoding)
        text_block, video_block = text_block or num_texts, video_block or num_videos
        rows = []
        for t in tqdm(range(0, num_texts, text_block), desc="scoring", disable=not progress):
            texts = slice_encoding(text_encoding, t, t + text_block)
            row = [
                self.similarity(texts, slice_encoding(video_encoding, v, v + video_block), **similarity_kwargs)
                .float()
                .cpu()
                for v in range(0, num_videos, video_block)
            ]
            rows.append(torch.cat(row, dim=1))
        return torch.cat(rows, dim=0)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **similarity_kwargs,
    ) -> RetrievalOutput:
        """Score a batch of captions against a batch of videos (caption i belongs to video i for the loss).

        Args:
            input_ids: `(batch_size, max_words)`.
            attention_mask: `(batch_size, max_words)`.
            pixel_values_videos: `(batch_size, num_frames, 3, image_size, image_size)`.
            video_mask: `(batch_size, num_frames)`.
            return_loss: add `compute_loss`'s loss (`loss`; what `compute_loss` returned in `loss_output`).
            output_hidden_states / output_attentions: return the towers' per-layer states / attention weights in
                `text_model_output` and `vision_model_output` (default: the config's).
            return_dict: `False` returns a tuple (default: the config's).
            **similarity_kwargs: passed to `batch_similarity` (e.g. EERCF's `rerank_top_k`).
        """
        if input_ids is None or pixel_values_videos is None:
            raise ValueError(
                "forward needs input_ids and pixel_values_videos; use encode_text / encode_video (or "
                "get_text_features / get_video_features) for one modality"
            )
        hidden_states, attentions = self._output_flags(output_hidden_states, output_attentions)
        text_encoding, text_output = self._encode_text(
            input_ids, attention_mask, output_hidden_states=hidden_states, output_attentions=attentions
        )
        video_encoding, vision_output = self._encode_video(pixel_values_videos, video_mask, hidden_states, attentions)
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
            text_model_output=text_output,
            vision_model_output=vision_output,
        )


def _num_rows(encoding) -> int:
    return len(next(value for value in encoding.values() if value is not None))


def _peft_adapter_parameter_ids(model: nn.Module) -> set[int]:
    """Ids of the parameters `peft` added to `model`: adapter weights of its tuner layers and `modules_to_save`
    copies (empty without peft)."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
        from peft.utils.other import ModulesToSaveWrapper
    except ImportError:
        return set()
    ids = set()
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            for layer_name in module.adapter_layer_names:
                ids.update(id(parameter) for parameter in getattr(module, layer_name).parameters())
        elif isinstance(module, ModulesToSaveWrapper):
            ids.update(id(parameter) for parameter in module.modules_to_save.parameters())
    return ids


__all__ = ["ImageTextRetrievalPreTrainedModel", "DEFAULT_GALLERY_BLOCK", "ParameterRole"]
