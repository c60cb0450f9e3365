"""What every converter writes next to the model: its tokenizer (`tvr convert clip`) or its processor (the methods'
converters), so the converted folder works with `tvr train --from-clip`, `tvr eval` and `tvr index` as it is.

`--tokenizer` takes a tokenizer folder or Hub id; without it, a model with OpenAI CLIP's 49,408-token vocabulary takes
the matching `openai/clip-vit-*` tokenizer from the Hub when it can be reached. Otherwise the model is written alone and
the command says what to pass.
"""

from __future__ import annotations

import argparse
import os
import sys

OPENAI_CLIP_VOCAB_SIZE = 49408
# (vision width, patch size, image size) -> the transformers checkpoint of that OpenAI CLIP (all share one tokenizer)
OPENAI_CLIP_IDS = {
    (768, 32, 224): "openai/clip-vit-base-patch32",
    (768, 16, 224): "openai/clip-vit-base-patch16",
    (1024, 14, 224): "openai/clip-vit-large-patch14",
    (1024, 14, 336): "openai/clip-vit-large-patch14-336",
}


def add_tokenizer_argument(parser: argparse.ArgumentParser) -> None:
    """Add `--tokenizer FOLDER_OR_HUB_ID` to a converter's parser."""
    parser.add_argument(
        "--tokenizer", default=None, metavar="FOLDER_OR_HUB_ID",
        help="the model's tokenizer (a folder or Hub id), saved with the model (methods: as their processor); default "
             "the matching openai/clip-vit-* tokenizer when the model has CLIP's vocabulary and the Hub is reachable",
    )


def default_tokenizer(config) -> str | None:
    """The Hub id of the OpenAI CLIP tokenizer for a model with CLIP's vocabulary, else `None`."""
    if config.text_config.vocab_size != OPENAI_CLIP_VOCAB_SIZE:
        return None
    vision = config.vision_config
    return OPENAI_CLIP_IDS.get((vision.hidden_size, vision.patch_size, vision.image_size),
                               "openai/clip-vit-base-patch32")


def save_tokenizer_or_processor(tokenizer: str | os.PathLike | None, model, output_dir: str | os.PathLike,
                                shown_as: str | os.PathLike | None = None) -> bool:
    """Save the tokenizer (a transformers image-text model) or the tvr processor (a tvr model) into `output_dir`.

    Args:
        tokenizer: folder or Hub id; `None`: `default_tokenizer(model.config)`.
        model: the converted model.
        output_dir: where to save (a converter's staging folder).
        shown_as: the folder the messages name (the final one), default `output_dir`.

    Returns:
        Whether something was saved. When no tokenizer is given and none can be found, prints what to pass to stderr.

    Raises:
        ValueError / OSError: a given tokenizer cannot be loaded or does not fit the model.
    """
    from transformers import AutoTokenizer

    from ..processing.model_processor import processor_for_model
    from ..processing.tokenizer import check_tokenizer_fits

    config = model.config
    source = tokenizer if tokenizer is not None else default_tokenizer(config)
    if source is None:
        reason = (f"no --tokenizer given, and the model's {config.text_config.vocab_size}-token vocabulary is not "
                  "OpenAI CLIP's, so there is no default")
    else:
        try:
            loaded = AutoTokenizer.from_pretrained(source)
            reason = None
        except OSError as error:
            if tokenizer is not None:
                raise OSError(f"--tokenizer {os.fspath(tokenizer)!r} could not be loaded: {error}") from None
            reason = f"no --tokenizer given, and the default {source} could not be loaded ({str(error).splitlines()[0]})"
    if reason is not None:
        print(f"tvr: warning: wrote the model to {os.fspath(shown_as or output_dir)} without a tokenizer: {reason}. Pass "
              "--tokenizer with the tokenizer the model was trained with (a folder or Hub id, e.g. "
              "openai/clip-vit-base-patch32), or give it to `tvr eval` / `tvr index` as --processor.", file=sys.stderr)
        return False
    if hasattr(config, "max_frames"):  # a tvr model: its processor
        processor_for_model(config, loaded, source).save_pretrained(output_dir)
    else:
        check_tokenizer_fits(loaded, config.text_config.vocab_size, source)
        loaded.save_pretrained(output_dir)
    return True


__all__ = ["add_tokenizer_argument", "default_tokenizer", "save_tokenizer_or_processor"]
