"""The processor a saved tvr model needs, built from its config and a tokenizer: what `tvr convert` writes next to a
converted model, and what `tvr eval` / `tvr index --processor TOKENIZER` use for a folder that has none.

Frames follow the config (`max_frames`, the tower's image size, CLIP mean / std, the method's frame sampling) and
captions its `max_words` in the tower's layout; the tokenizer is checked against the text tower's vocabulary.
"""

from __future__ import annotations

import os

# model_type -> frame sampling, for methods whose original code samples frames other than CLIP4Clip's way (1 fps,
# then uniform to max_frames): filled by each method's entry (`tvr.methods.register_method`)
FRAME_SAMPLING: dict[str, str] = {}
PROCESSOR_FILE = "processor_config.json"


def processor_for_model(config, tokenizer, where: str | os.PathLike | None = None):
    """A `TVRProcessor` for a model of `config` with `tokenizer` (an object, or a folder / Hub id to load it from).

    Raises:
        ValueError: when the tokenizer does not fit the model's text tower (`check_tokenizer_fits`).
    """
    from transformers import AutoTokenizer

    from ..modeling.towers import tower_family
    from .processing_tvr import TVRProcessor
    from .tokenizer import check_tokenizer_fits
    from .video_processing_tvr import TVRVideoProcessor

    where = where or (tokenizer if isinstance(tokenizer, (str, os.PathLike)) else "tokenizer")
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    check_tokenizer_fits(tokenizer, config.text_config.vocab_size, where)
    image_size = config.vision_config.image_size
    frames = dict(size=image_size, crop_size=image_size, max_frames=config.max_frames)
    if config.model_type in FRAME_SAMPLING:
        frames["frame_sampling"] = FRAME_SAMPLING[config.model_type]
    family = tower_family(getattr(config, "tower_type", "clip"))
    return TVRProcessor(TVRVideoProcessor(**frames), tokenizer, max_words=config.max_words,
                        text_padding=family.text_padding)


def load_processor_for_model(model_dir: str | os.PathLike, config, processor: str | os.PathLike | None = None):
    """The processor of a saved model: `processor` (a processor folder, or a tokenizer folder / Hub id, for which
    frames and caption length come from `config`), else the model folder's own.

    Raises:
        FileNotFoundError: the folder has no processor and none is given, saying what to pass.
        ValueError: the tokenizer does not fit the model.
    """
    from transformers import AutoProcessor

    from .processing_tvr import TVRProcessor
    from .tokenizer import check_tokenizer_fits

    if processor is None:
        if not os.path.isfile(os.path.join(model_dir, PROCESSOR_FILE)):
            raise FileNotFoundError(
                f"model folder {os.fspath(model_dir)!r} has no processor ({PROCESSOR_FILE} and a tokenizer): pass "
                "--processor with a processor folder or the tokenizer the model was trained with (a folder or Hub "
                "id, e.g. openai/clip-vit-base-patch32), or convert it again with --tokenizer")
        source = model_dir
    else:
        source = processor
    is_processor = os.path.isfile(os.path.join(source, PROCESSOR_FILE)) if os.path.isdir(source) else None
    if is_processor is False:  # a tokenizer folder
        return processor_for_model(config, source)
    loaded = AutoProcessor.from_pretrained(source)
    if not isinstance(loaded, TVRProcessor):  # a Hub id of a tokenizer (AutoProcessor falls back to it)
        return processor_for_model(config, getattr(loaded, "tokenizer", loaded))
    check_tokenizer_fits(loaded, config.text_config.vocab_size, source)
    return loaded


__all__ = ["load_processor_for_model", "processor_for_model"]
