"""CLIP towers for video-text models: transformers' own CLIP text and vision models, plus a 3d patch embedding.

`CLIPBackbone` holds exactly the parameters of a transformers `CLIPModel` (`text_model.*`, `vision_model.*`,
`text_projection`, `visual_projection`, `logit_scale`), so any transformers-format CLIP checkpoint loads into it,
plus `patch_embedding_3d` when the config asks for CLIP4Clip's 3d linear patch.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import CLIPTextModel, CLIPVisionModel
from transformers.modeling_outputs import BaseModelOutputWithPooling


def inflate_patch_kernel(kernel_2d: torch.Tensor, time_size: int = 3) -> torch.Tensor:
    """A 3d patch kernel that starts out equal to a 2d one (CLIP4Clip's `conv2` initialisation).

    Args:
        kernel_2d: `(width, channels, patch, patch)`, CLIP's patch embedding.
        time_size: temporal extent of the 3d kernel.

    Returns:
        `(width, channels, time_size, patch, patch)` with `kernel_2d` in the middle slice and zeros elsewhere, so that
        with temporal padding `(time_size - 1) // 2` the 3d convolution of a video equals the 2d one of each frame.
    """
    kernel = kernel_2d.new_zeros(kernel_2d.shape[0], kernel_2d.shape[1], time_size, *kernel_2d.shape[2:])
    kernel[:, :, (time_size - 1) // 2] = kernel_2d
    return kernel


class CLIPBackbone(nn.Module):
    """CLIP text and vision towers with their projections and logit scale, applied to captions and video frames.

    Reads `config.text_config` (`CLIPTextConfig`), `config.vision_config` (`CLIPVisionConfig`),
    `config.projection_dim`, `config.logit_scale_init_value` and `config.linear_patch` ("2d" or "3d").
    """

    def __init__(self, config):
        super().__init__()
        text_config, vision_config = config.text_config, config.vision_config
        self.text_model = CLIPTextModel._from_config(text_config)
        self.vision_model = CLIPVisionModel._from_config(vision_config)
        self.text_projection = nn.Linear(text_config.hidden_size, config.projection_dim, bias=False)
        self.visual_projection = nn.Linear(vision_config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
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

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, output_all_tokens: bool = False
    ) -> BaseModelOutputWithPooling:
        """Run the text tower.

        Args:
            input_ids: `(batch_size, max_words)`; each row holds an end-of-text token (`text_config.eos_token_id`).
            attention_mask: `(batch_size, max_words)`; CLIP's causal mask already hides the padding after the
                end-of-text token from it, so the pooled feature does not depend on this mask.
            output_all_tokens: also project every token.

        Returns:
            `pooler_output`: `(batch_size, projection_dim)` projected end-of-text feature, not normalised;
            `last_hidden_state`: `(batch_size, max_words, projection_dim)` projected token features, or `None`
            unless `output_all_tokens`.
        """
        outputs = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        tokens = self.text_projection(outputs.last_hidden_state) if output_all_tokens else None
        return BaseModelOutputWithPooling(
            last_hidden_state=tokens, pooler_output=self.text_projection(outputs.pooler_output)
        )

    def embed_frames(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """Patch + class + position embeddings of every frame.

        Args:
            pixel_values_videos: `(batch_size, num_frames, num_channels, image_size, image_size)`.

        Returns:
            `(batch_size * num_frames, 1 + num_patches, vision_width)`, frames of one video contiguous.
        """
        embeddings = self.vision_model.embeddings
        if self.patch_embedding_3d is None:
            return embeddings(pixel_values_videos.flatten(0, 1))
        # (batch, frames, C, H, W) -> (batch, C, frames, H, W): the kernel runs over the frames of one video.
        video = pixel_values_videos.transpose(1, 2).to(self.patch_embedding_3d.weight.dtype)
        patches = self.patch_embedding_3d(video)  # (batch, width, frames, grid, grid)
        patches = patches.transpose(1, 2).flatten(0, 1).flatten(2).transpose(1, 2)  # (batch*frames, grid², width)
        class_embeds = embeddings.class_embedding.expand(patches.shape[0], 1, -1).to(patches.dtype)
        return torch.cat([class_embeds, patches], dim=1) + embeddings.position_embedding(embeddings.position_ids)

    def encode_frames(
        self, pixel_values_videos: torch.Tensor, output_all_tokens: bool = False
    ) -> BaseModelOutputWithPooling:
        """Run the vision tower on every frame (the frames do not see each other).

        Args:
            pixel_values_videos: `(batch_size, num_frames, num_channels, image_size, image_size)`.
            output_all_tokens: also return every token after `post_layernorm` and the projection (CLS + patches),
                as the original CLIP applies them.

        Returns:
            `pooler_output`: `(batch_size, num_frames, projection_dim)` projected CLS feature of each frame, not
            normalised; `last_hidden_state`: `(batch_size, num_frames, 1 + num_patches, projection_dim)` or `None`
            unless `output_all_tokens`.
        """
        batch_size, num_frames = pixel_values_videos.shape[:2]
        hidden_states = self.vision_model.pre_layrnorm(self.embed_frames(pixel_values_videos))
        hidden_states = self.vision_model.encoder(inputs_embeds=hidden_states).last_hidden_state
        if output_all_tokens:
            tokens = self.visual_projection(self.vision_model.post_layernorm(hidden_states))
            tokens = tokens.view(batch_size, num_frames, *tokens.shape[1:])
            return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=tokens[:, :, 0])
        cls_features = self.visual_projection(self.vision_model.post_layernorm(hidden_states[:, 0]))
        return BaseModelOutputWithPooling(pooler_output=cls_features.view(batch_size, num_frames, -1))

    @torch.no_grad()
    def load_clip_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a transformers `CLIPModel` state dict (`patch_embedding_3d`, if any, is left as it is).

        Raises:
            ValueError: listing the keys that do not fit.
        """
        result = self.load_state_dict(state_dict, strict=False)
        missing = [key for key in result.missing_keys if not key.startswith("patch_embedding_3d.")]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"not a transformers CLIPModel state dict for this backbone: missing keys {missing}, "
                f"unexpected keys {result.unexpected_keys}"
            )

    @torch.no_grad()
    def inflate_patch_embedding(self) -> None:
        """Set the 3d patch embedding from the 2d one so that both give the same output (no-op for 2d)."""
        if self.patch_embedding_3d is not None:
            kernel_2d = self.vision_model.embeddings.patch_embedding.weight
            kernel = inflate_patch_kernel(kernel_2d, time_size=self.patch_embedding_3d.kernel_size[0])
            self.patch_embedding_3d.weight.copy_(kernel)


__all__ = ["CLIPBackbone", "inflate_patch_kernel"]
