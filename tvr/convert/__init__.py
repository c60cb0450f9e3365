"""Converters from the original research code's checkpoints to tvr / transformers folders (`tvr convert ...`).

`openai_clip` holds the reusable CLIP mappings (OpenAI keys -> transformers CLIP keys, fused attention split) that
the method converters (`clip4clip`, and those built on it) compose.
"""

from .clip4clip import convert_clip4clip_checkpoint, convert_clip4clip_state_dict
from .openai_clip import (
    clip_config_from_openai,
    convert_openai_clip,
    convert_openai_clip_state_dict,
    convert_resblocks,
    load_original_state_dict,
    raise_on_unknown_keys,
)

__all__ = [
    "clip_config_from_openai",
    "convert_clip4clip_checkpoint",
    "convert_clip4clip_state_dict",
    "convert_openai_clip",
    "convert_openai_clip_state_dict",
    "convert_resblocks",
    "load_original_state_dict",
    "raise_on_unknown_keys",
]
