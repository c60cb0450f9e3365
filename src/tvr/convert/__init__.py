"""The parts every converter shares (`tvr convert ...`); each method's own converter is `tvr.methods.<name>.convert`.

`openai_clip` holds the reusable CLIP mappings (OpenAI keys -> transformers CLIP keys, fused attention split) that
the method converters compose; `arguments` the original flags and `--set`; `layouts` which method a checkpoint is.
"""

from .._lazy import lazy_names

# module -> the names it gives the package, each loaded on first use (`import tvr.X.cli` stays light)
EXPORTS = {
    "openai_clip": ("clip_config_from_openai", "convert_openai_clip", "convert_openai_clip_state_dict",
                    "convert_resblocks", "load_original_state_dict", "raise_on_unknown_keys"),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names})
