"""Which original code a checkpoint comes from, read from its keys: a converter given another method's checkpoint
names the converter that reads it, instead of failing later on a missing key or blaming a ResNet CLIP.

Each layout is recognised by keys only it has (checked in order: DAVRL and InternVideo checkpoints also hold the
`clip.*` keys every method shares). EMCL-Net saves exactly CLIP4Clip's keys (its EM bases are not saved), so those
two layouts are one: either converter reads it, and the keys cannot tell which method trained it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterable


@dataclasses.dataclass(frozen=True)
class Layout:
    """A checkpoint layout: `name` (as in "looks like {name} checkpoint"), the converters that read it, and the
    patterns (full matches) of the keys that mark it."""

    key: str
    name: str
    converters: tuple[str, ...]
    marks: tuple[str, ...]

    def evidence(self, keys: Iterable[str]) -> list[str]:
        """The keys matching this layout's marks, sorted."""
        pattern = re.compile("|".join(f"(?:{mark})" for mark in self.marks))
        return sorted(key for key in keys if pattern.fullmatch(key))


LAYOUTS = (
    Layout("davrl", "a DAVRL (dual-attention)", ("dual_attention",),
           (r".*\.attn\.TVPt_LoRA_[ab]", r"clip\.visual\.prompt_embeddings")),
    Layout("internvideo", "an InternVideo (CLIP-EVL)", ("internvideo", "internvideo-zeroshot"),
           (r"clip\.visual\.transformer\.(balance|temporal_cls_token|dec\..+|dpe\..+)", r"clip\.visual_proj")),
    Layout("eercf", "an EERCF", ("eercf",), (r"global_mat_weight", r"frame_logit_weight")),
    Layout("clip4clip_tight", "a CLIP4Clip tightTransf", ("clip4clip",), (r"cross\..+", r"similarity_dense\..+")),
    Layout("resnet_clip", "a ResNet CLIP", (), (r"(clip\.)?visual\.(layer\d|attnpool)\..+",)),
    Layout("clip4clip", "a CLIP4Clip or EMCL-Net", ("clip4clip", "emcl"),
           (r"transformerClip\..+", r"lstm_visual\..+", r"frame_position_embeddings\.weight", r"clip\..+")),
    Layout("openai_clip", "an OpenAI CLIP", ("clip",),
           (r"visual\.proj", r"visual\.conv1\.weight", r"token_embedding\.weight", r"text_projection")),
)


def detect_layout(keys: Iterable[str]) -> tuple[Layout, list[str]] | None:
    """The first layout whose marks some of `keys` match, with those keys; `None` when none does."""
    keys = list(keys)
    for layout in LAYOUTS:
        evidence = layout.evidence(keys)
        if evidence:
            return layout, evidence
    return None


def check_layout(
    keys: Iterable[str], converter: str, source: str | os.PathLike, accept: Iterable[str] = (), what: str = "checkpoint"
) -> None:
    """Refuse a checkpoint of another method's layout, naming the converter that reads it.

    Args:
        keys: the checkpoint's keys.
        converter: the `tvr convert` format that was asked (`"clip4clip"`, `"clip"` for an OpenAI CLIP file).
        source: the file, for the message.
        accept: keys of further layouts this call reads (EERCF reads a CLIP4Clip checkpoint when `--clip` fills it).
        what: how the message names the file (`"--clip file"`).

    Raises:
        ValueError: `checkpoint 'x.bin' looks like an EERCF checkpoint (keys 'frame_logit_weight', ...), which
            tvr convert clip4clip does not read: use tvr convert eercf`.
    """
    found = detect_layout(keys)
    if found is None:
        return
    layout, evidence = found
    if converter in layout.converters or layout.key in set(accept):
        return
    shown = ", ".join(repr(key) for key in evidence[:2]) + (", ..." if len(evidence) > 2 else "")
    fix = (" or ".join(f"tvr convert {name}" for name in layout.converters) if layout.converters
           else "tvr converts ViT CLIP models only")
    use = f"use {fix}" if layout.converters else fix
    raise ValueError(f"{what} {os.fspath(source)!r} looks like {layout.name} checkpoint (keys {shown}), which "
                     f"tvr convert {converter} does not read: {use}")


__all__ = ["LAYOUTS", "Layout", "check_layout", "detect_layout"]
