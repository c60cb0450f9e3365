"""The image-text tower every tvr method stands on: any transformers image-text model with separate text and vision
towers, applied to captions and to the frames of videos.

`ImageTextTower` holds exactly the parameters of the image-text model it wraps (`text_model.*`, `vision_model.*`,
the projections where the family has them, `logit_scale`, `logit_bias` where it has one), so the model's own
`state_dict()` loads into it unchanged, plus `patch_embedding_3d` when the config asks for CLIP4Clip's 3d patch.
What differs between families is written once, in a `TowerFamily` entry of `TOWER_FAMILIES`:

| family        | text pooling          | vision pooling          | projections | logits                   | text padding |
|---------------|-----------------------|-------------------------|-------------|--------------------------|--------------|
| `clip`        | end-of-text token     | CLS + post-LayerNorm    | Linear      | exp(s) * cos, softmax CE | CLIP4Clip's  |
| `metaclip_2`  | end-of-text token     | CLS + post-LayerNorm    | Linear      | exp(s) * cos, softmax CE | tokenizer's  |
| `siglip`      | last token + head     | attention-pooling head  | in the heads| exp(s) * cos + b, sigmoid| max_length   |

SigLIP 2's fixed-resolution checkpoints are `siglip` models. SigLIP 2's NaFlex variant (`siglip2`: variable patch
grids with a pixel mask) does not fit a fixed frame tensor and is not offered.

The vision side runs as one path, `encode_frames`, built from pieces a method can also call itself:
`embed_frames` (patch + class + position embeddings, and the pre-LayerNorm where the family has one),
`vision_layers` (the stock encoder layers, to run one by one over any token layout), `pool_frames` and
`project_tokens`. Per-layer hidden states and attention weights are recorded the transformers way: the towers' own
`_can_record_outputs` hooks, switched on by `capture_outputs` (the text tower's `forward`; `record_frames` for the
frames, whatever loop a method runs them in).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import CONFIG_MAPPING, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput
from transformers.utils.output_capturing import capture_outputs, resolve_hidden_states_indices, selected_hidden_states

from .losses import contrastive_loss, sigmoid_loss


@dataclass(frozen=True)
class TowerFamily:
    """How one family of transformers image-text models is built and used.

    Attributes:
        text_model_class / vision_model_class: transformers class names of the two towers.
        has_projections: separate `text_projection` / `visual_projection` Linear layers (CLIP); otherwise the
            towers' own pooling heads already output the shared embedding (SigLIP).
        has_logit_bias: the model adds a learnt `logit_bias` to its scaled cosine (SigLIP).
        loss: the pair loss the family was trained with, the default of a tvr config's `loss_type`.
        text_padding: `"clip4clip"` (start token, text, end token, id-0 padding to `max_words`: the seeds' layout) or
            `"max_length"` (the tokenizer's own special tokens and pad id, padded to `max_words`).
        text_uses_attention_mask: whether the text tower is given the padding mask (SigLIP was trained without one
            and pools the last, padded, position).
        logit_scale_shape: shape of the stored `logit_scale` / `logit_bias` (so the model's state dict loads as is).
        logit_scale_init / logit_bias_init: their values for a randomly initialised tower.
    """

    text_model_class: str
    vision_model_class: str
    has_projections: bool
    has_logit_bias: bool
    loss: str
    text_padding: str
    text_uses_attention_mask: bool = True
    logit_scale_shape: tuple[int, ...] = ()
    logit_scale_init: float = 2.6592  # ln(1 / 0.07), CLIP's
    logit_bias_init: float = 0.0

    def model_class(self, which: str) -> type[PreTrainedModel]:
        name = self.text_model_class if which == "text" else self.vision_model_class
        return getattr(importlib.import_module("transformers"), name)


TOWER_FAMILIES: dict[str, TowerFamily] = {
    "clip": TowerFamily("CLIPTextModel", "CLIPVisionModel", True, False, "softmax", "clip4clip"),
    "metaclip_2": TowerFamily("MetaClip2TextModel", "MetaClip2VisionModel", True, False, "softmax", "max_length"),
    "siglip": TowerFamily(
        "SiglipTextModel",
        "SiglipVisionModel",
        has_projections=False,
        has_logit_bias=True,
        loss="sigmoid",
        text_padding="max_length",
        text_uses_attention_mask=False,
        logit_scale_shape=(1,),
        logit_scale_init=2.302585,  # ln 10, the SigLIP paper's t' init
        logit_bias_init=-10.0,
    ),
}

LOSSES = {"softmax": contrastive_loss, "sigmoid": sigmoid_loss}


def tower_family(tower_type: str) -> TowerFamily:
    """The `TowerFamily` of an image-text `model_type`; raises naming the supported ones."""
    if tower_type not in TOWER_FAMILIES:
        raise ValueError(
            f"tower_type {tower_type!r} is not a supported image-text model; expected one of {sorted(TOWER_FAMILIES)}"
        )
    return TOWER_FAMILIES[tower_type]


def tower_sub_config_class(tower_type: str, key: str) -> type[PreTrainedConfig]:
    """The transformers class of an image-text model's `text_config` / `vision_config` (e.g. `SiglipTextConfig`)."""
    tower_family(tower_type)
    return CONFIG_MAPPING[tower_type].sub_configs_defaults[key].config_class


def inflate_patch_kernel(kernel_2d: torch.Tensor, time_size: int = 3) -> torch.Tensor:
    """A 3d patch kernel that starts out equal to a 2d one (CLIP4Clip's `conv2` initialisation).

    Args:
        kernel_2d: `(width, channels, patch, patch)`, the tower's patch embedding.
        time_size: temporal extent of the 3d kernel.

    Returns:
        `(width, channels, time_size, patch, patch)` with `kernel_2d` in the middle slice and zeros elsewhere, so that
        with temporal padding `(time_size - 1) // 2` the 3d convolution of a video equals the 2d one of each frame.
    """
    kernel = kernel_2d.new_zeros(kernel_2d.shape[0], kernel_2d.shape[1], time_size, *kernel_2d.shape[2:])
    kernel[:, :, (time_size - 1) // 2] = kernel_2d
    return kernel


@dataclass
class FrameEncoderOutput(ModelOutput):
    """What `ImageTextTower.encode_frames` returns.

    Args:
        pooler_output (`torch.FloatTensor` of shape `(batch_size, num_frames, projection_dim)`):
            Each frame's pooled feature in the shared embedding space, not normalised (CLIP: projected CLS after
            the post-LayerNorm; SigLIP: the attention-pooling head's output).
        patch_tokens (`torch.FloatTensor` of shape `(batch_size, num_frames, num_patches, projection_dim)`,
            *optional*, with `output_all_tokens=True`):
            Every patch token after the post-LayerNorm and the projection (the class token left out).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, with `output_hidden_states=True`):
            The embeddings (after the pre-LayerNorm, if any) and the output of every encoder layer, each
            `(batch_size * num_frames, num_tokens, vision_width)`, frames of one video contiguous.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size * num_frames, num_tokens, vision_width)`):
            The last encoder layer's output, before the post-LayerNorm.
        layer_outputs (`tuple(torch.FloatTensor)`, *optional*, with `output_layers`):
            The outputs of the encoder layers numbered in `output_layers` (0-based), in that order, each shaped like
            `last_hidden_state`; only these are kept, unlike `hidden_states`.
    """

    pooler_output: torch.FloatTensor | None = None
    patch_tokens: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    last_hidden_state: torch.FloatTensor | None = None
    layer_outputs: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class FrameRecording(ModelOutput):
    """What the vision tower's recording hooks collected while `ImageTextTower.record_frames` ran a call, and the
    call's result. `hidden_states` / `attentions` are as the hooks give them: `(batch_size * num_frames, ...)`.

    Args:
        hidden_states (`tuple(torch.FloatTensor)`): the first vision layer's input and every layer's output (`None`
            where a selection leaves one out), empty when no frame ran through the stock layers.
        attentions (`tuple(torch.FloatTensor)`): every vision attention's weights (eager attention only).
        result: what the call returned.
    """

    hidden_states: tuple[torch.FloatTensor | None, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    result: Any = None


@capture_outputs(tie_last_hidden_states=False)
def _recorded(vision_model: PreTrainedModel, run: Callable[[], Any], **recording) -> FrameRecording:
    """`run()` under `vision_model`'s output recording (transformers' `capture_outputs`, exactly as on
    `CLIPVisionModel.forward`: its `_can_record_outputs`, its config's defaults and layer count)."""
    return FrameRecording(result=run())


class ImageTextTower(nn.Module):
    """A transformers image-text model's text and vision towers, projections and logit scale (and bias).

    Reads from a tvr config: `tower_type` (the image-text `model_type`), `text_config`, `vision_config`,
    `projection_dim`, `logit_scale_init_value`, `logit_bias_init_value` and `linear_patch` ("2d" or "3d").
    """

    def __init__(self, config):
        super().__init__()
        self.tower_type = config.tower_type
        self.family = tower_family(config.tower_type)
        text_config, vision_config = config.text_config, config.vision_config
        self.text_model = self.family.model_class("text")._from_config(text_config)
        self.vision_model = self.family.model_class("vision")._from_config(vision_config)
        if not self.num_prefix_tokens and not getattr(self.vision_model, "use_head", False):
            raise ValueError(f"a {self.tower_type} vision tower without a class token needs its pooling head "
                             "(vision_config.vision_use_head=True) to give one feature per frame")
        if self.family.has_projections:
            self.text_projection = nn.Linear(text_config.hidden_size, config.projection_dim, bias=False)
            self.visual_projection = nn.Linear(vision_config.hidden_size, config.projection_dim, bias=False)
        shape = self.family.logit_scale_shape
        self.logit_scale = nn.Parameter(torch.full(shape, float(config.logit_scale_init_value)))
        if self.family.has_logit_bias:
            self.logit_bias = nn.Parameter(torch.full(shape, float(config.logit_bias_init_value)))
        self.patch_embedding_3d = None
        if config.linear_patch == "3d":
            patch = vision_config.patch_size
            # Each frame's patches see the frame before and after it; padding keeps one output per frame.
            self.patch_embedding_3d = nn.Conv3d(
                vision_config.num_channels,
                vision_config.hidden_size,
                kernel_size=(3, patch, patch),
                stride=(1, patch, patch),
                padding=(1, 0, 0),
                bias=False,
            )
            # the 3d patch replaces the 2d one, which only seeds it (`inflate_patch_embedding`): nothing to train
            self.vision_model.embeddings.patch_embedding.weight.requires_grad_(False)

    # ------------------------------------------------------------------------------------------------ logits

    def scale_logits(self, cosine: torch.Tensor) -> torch.Tensor:
        """Cosine similarities -> the family's logits: `exp(logit_scale) * cosine` (+ `logit_bias`)."""
        logits = self.logit_scale.exp() * cosine
        return logits + self.logit_bias if self.family.has_logit_bias else logits

    # -------------------------------------------------------------------------------------------------- text

    def encode_text(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | list[int] | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling:
        """Run the text tower.

        Args:
            input_ids: `(batch_size, max_words)` laid out as the family's tokenizer does (see `TowerFamily`).
            attention_mask: `(batch_size, max_words)`; CLIP's causal mask already hides the padding after the
                end-of-text token, and SigLIP is run without it, as both were trained.
            output_hidden_states / output_attentions: passed to the text model, which records them itself
                (default: its config's). `output_hidden_states` may be indices of the hidden states to keep.

        Returns:
            The text model's output whose `pooler_output` `(batch_size, projection_dim)` is the pooled feature in the
            shared space, not normalised; `last_hidden_state` `(batch_size, max_words, text_width)`;
            `hidden_states` / `attentions` when asked (`attentions` `None` when none were formed: SDPA).
        """
        mask = attention_mask if self.family.text_uses_attention_mask else None
        flags = {"output_hidden_states": output_hidden_states, "output_attentions": output_attentions}
        flags = {name: value for name, value in flags.items() if value is not None}
        outputs = self.text_model(input_ids=input_ids, attention_mask=mask, return_dict=True, **flags)
        pooled = self.text_projection(outputs.pooler_output) if self.family.has_projections else outputs.pooler_output
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=pooled,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions or None,  # SDPA forms no weights: None, not an empty tuple
        )

    # ------------------------------------------------------------------------------------------------ vision

    @property
    def vision_layers(self) -> nn.ModuleList:
        """The vision encoder's stock layers; `layer(hidden_states, attention_mask)` runs one."""
        return self.vision_model.encoder.layers

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches in each frame's sequence: 1 (CLS) for CLIP-like towers, 0 for SigLIP."""
        return int(hasattr(self.vision_model.embeddings, "class_embedding"))

    def embed_frames(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """Patch (+ class) + position embeddings of every frame, then the pre-LayerNorm where the family has one.

        Args:
            pixel_values_videos: `(batch_size, num_frames, num_channels, image_size, image_size)`.

        Returns:
            `(batch_size * num_frames, num_prefix_tokens + num_patches, vision_width)`, frames of one video
            contiguous: the input of `vision_layers[0]`.
        """
        embeddings = self.vision_model.embeddings
        if self.patch_embedding_3d is None:
            hidden_states = embeddings(pixel_values_videos.flatten(0, 1))
        else:
            # (batch, frames, C, H, W) -> (batch, C, frames, H, W): the kernel runs over the frames of one video.
            video = pixel_values_videos.transpose(1, 2).to(self.patch_embedding_3d.weight.dtype)
            patches = self.patch_embedding_3d(video)  # (batch, width, frames, grid, grid)
            patches = patches.transpose(1, 2).flatten(0, 1).flatten(2).transpose(1, 2)  # (batch*frames, grid², width)
            if self.num_prefix_tokens:
                class_embeds = embeddings.class_embedding.expand(patches.shape[0], 1, -1).to(patches.dtype)
                patches = torch.cat([class_embeds, patches], dim=1)
            hidden_states = patches + embeddings.position_embedding(embeddings.position_ids)
        pre_layernorm = getattr(self.vision_model, "pre_layrnorm", None)
        return pre_layernorm(hidden_states) if pre_layernorm is not None else hidden_states

    def pool_frames(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The last layer's output `(frames, tokens, vision_width)` -> pooled `(frames, projection_dim)` features."""
        if getattr(self.vision_model, "use_head", False):
            return self.vision_model.head(self.vision_model.post_layernorm(hidden_states))
        pooled = self.vision_model.post_layernorm(hidden_states[:, 0])
        return self.visual_projection(pooled) if self.family.has_projections else pooled

    def project_tokens(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """The last layer's output `(frames, tokens, vision_width)` -> every token after the post-LayerNorm and the
        projection, `(frames, tokens, projection_dim)` (as the original CLIP applies them to its patch tokens)."""
        tokens = self.vision_model.post_layernorm(hidden_states)
        return self.visual_projection(tokens) if self.family.has_projections else tokens

    def encode_frames(
        self,
        pixel_values_videos: torch.Tensor,
        output_all_tokens: bool = False,
        output_hidden_states: bool = False,
        output_layers: Sequence[int] | None = None,
    ) -> FrameEncoderOutput:
        """Run the vision tower on every frame (the frames do not see each other).

        Args:
            pixel_values_videos: `(batch_size, num_frames, num_channels, image_size, image_size)`.
            output_all_tokens: also return every patch token, projected (`patch_tokens`).
            output_hidden_states: also return the embeddings and every layer's output (`hidden_states`).
            output_layers: also return the outputs of these encoder layers (0-based; `layer_outputs`), e.g. the
                layers a temporal branch reads (InternVideo's `extractor_layers`).

        Returns:
            A `FrameEncoderOutput`.
        """
        batch_size, num_frames = pixel_values_videos.shape[:2]
        num_layers = len(self.vision_layers)
        output_layers = list(output_layers) if output_layers is not None else None
        if output_layers is not None and not all(0 <= index < num_layers for index in output_layers):
            raise ValueError(f"output_layers {output_layers} must be layer numbers in [0, {num_layers})")
        hidden_states = self.embed_frames(pixel_values_videos)
        all_hidden_states = [hidden_states]
        kept: dict[int, torch.Tensor] = {}
        # the stock layers: inside `record_frames`, their own recording hooks keep hidden states / attentions
        for index, layer in enumerate(self.vision_layers):
            hidden_states = layer(hidden_states, None)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if output_layers is not None and index in output_layers:
                kept[index] = hidden_states
        pooled = self.pool_frames(hidden_states).view(batch_size, num_frames, -1)
        patch_tokens = None
        if output_all_tokens:
            tokens = self.project_tokens(hidden_states[:, self.num_prefix_tokens :])
            patch_tokens = tokens.view(batch_size, num_frames, *tokens.shape[1:])
        return FrameEncoderOutput(
            pooler_output=pooled,
            patch_tokens=patch_tokens,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            last_hidden_state=hidden_states,
            layer_outputs=tuple(kept[index] for index in output_layers) if output_layers is not None else None,
        )

    def record_frames(
        self,
        encode: Callable[[], Any],
        num_frames: int,
        output_hidden_states: bool | list[int] | None = False,
        output_attentions: bool | None = False,
    ) -> tuple[Any, BaseModelOutputWithPooling | None]:
        """Call `encode()` (a method's `encode_video`, whatever it does) with the vision tower's own output recording
        on, and return its result with the vision tower's output per video, as transformers' `output_hidden_states`
        / `output_attentions` ask.

        The recording is transformers' (`capture_outputs` with the vision model's `_can_record_outputs`, as its
        `forward` has): the stock vision layers record whenever they run inside, in `encode_frames` or in a
        method's own loop over `vision_layers`. The last layer's output is always kept, for `last_hidden_state`.

        Args:
            encode: the call to run.
            num_frames: frames per video, to lay the recorded `(batch_size * num_frames, ...)` tensors out per video.
            output_hidden_states: `True`, or indices of the hidden states to keep (the others are `None`).
            output_attentions: keep each layer's attention weights (eager attention only: SDPA forms none).

        Returns:
            `encode()`'s result and a `BaseModelOutputWithPooling` with every tensor per video:
            `last_hidden_state` `(batch, frames, tokens, vision_width)` (the last layer's output, before the
            post-LayerNorm), `pooler_output` `(batch, frames, projection_dim)` (`pool_frames` of it), `hidden_states`
            (the embeddings + each layer) and `attentions` `(batch, frames, heads, tokens, tokens)` per layer when
            asked; `None` when no frame ran through the stock layers one by one (DAVRL's own token layout).
        """
        last = len(self.vision_layers)  # the hidden states are the first layer's input, then each layer's output
        selected = selected_hidden_states(output_hidden_states)
        asked = resolve_hidden_states_indices(self.vision_model, selected) if selected is not None else None
        keep = sorted(asked | {last}) if asked is not None else (True if output_hidden_states else [last])
        recording = _recorded(
            self.vision_model, encode, output_hidden_states=keep, output_attentions=bool(output_attentions),
            return_dict=True,
        )
        recorded = recording.hidden_states
        if len(recorded) != last + 1:  # no frame ran through the stock layers one by one
            return recording.result, None

        def per_video(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.view(-1, num_frames, *tensor.shape[1:])

        last_hidden_state = recorded[-1]
        hidden_states = None
        if output_hidden_states:
            hidden_states = tuple(
                per_video(state) if state is not None and (asked is None or index in asked) else None
                for index, state in enumerate(recorded)
            )
        return recording.result, BaseModelOutputWithPooling(
            last_hidden_state=per_video(last_hidden_state),
            pooler_output=per_video(self.pool_frames(last_hidden_state)),
            hidden_states=hidden_states,
            attentions=tuple(map(per_video, recording.attentions or ())) or None,
        )

    # ------------------------------------------------------------------------------------------ initialising

    @torch.no_grad()
    def load_image_text_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load the state dict of the wrapped transformers image-text model (`patch_embedding_3d`, if any, is left
        as it is).

        Raises:
            ValueError: listing the keys that do not fit.
        """
        result = self.load_state_dict(state_dict, strict=False)
        missing = [key for key in result.missing_keys if not key.startswith("patch_embedding_3d.")]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"not a transformers {self.tower_type!r} image-text state dict for this tower: "
                f"missing keys {missing}, unexpected keys {result.unexpected_keys}"
            )

    @torch.no_grad()
    def inflate_patch_embedding(self) -> None:
        """Set the 3d patch embedding from the 2d one so that both give the same output (no-op for 2d)."""
        if self.patch_embedding_3d is not None:
            kernel_2d = self.vision_model.embeddings.patch_embedding.weight
            kernel = inflate_patch_kernel(kernel_2d, time_size=self.patch_embedding_3d.kernel_size[0])
            self.patch_embedding_3d.weight.copy_(kernel)

    def freeze_lower_layers(self, freeze_layer_num: int) -> list[str]:
        """Freeze the embeddings, the pre-LayerNorm and the encoder layers below `freeze_layer_num` of both towers
        (CLIP4Clip's `--freeze_layer_num`; `0` freezes the embeddings only, `-1` nothing).

        The top of each tower keeps training: final LayerNorms, pooling heads, projections, logit scale and bias,
        and the 3d patch embedding, which is new (the original meant it to train; its test froze nothing).

        Returns:
            The names (relative to the tower) of the parameters frozen.
        """
        if freeze_layer_num < 0:
            return []
        modules = [self.text_model.embeddings, self.vision_model.embeddings]
        modules += [getattr(self.vision_model, "pre_layrnorm", None)]
        for encoder in (self.text_model.encoder, self.vision_model.encoder):
            modules += list(encoder.layers[:freeze_layer_num])
        frozen_ids = set()
        for module in modules:
            if module is not None:
                for parameter in module.parameters():
                    parameter.requires_grad_(False)
                    frozen_ids.add(id(parameter))
        return [name for name, parameter in self.named_parameters() if id(parameter) in frozen_ids]


__all__ = [
    "FrameEncoderOutput",
    "FrameRecording",
    "ImageTextTower",
    "LOSSES",
    "TOWER_FAMILIES",
    "TowerFamily",
    "inflate_patch_kernel",
    "tower_family",
    "tower_sub_config_class",
]
