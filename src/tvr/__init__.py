"""tvr: text-to-video retrieval on Hugging Face transformers.

``import tvr`` is light (no torch, no transformers): every name below loads on first use (``tvr.CLIP4ClipModel``,
``from tvr import TVRProcessor``, ``tvr.retrieval``), as transformers' own top-level module does. It also makes tvr's
configs, models and processors known to the transformers Auto classes and its pipelines to ``pipeline()``
(``"video-text-retrieval"``, ``"zero-shot-video-classification"``) before the first lookup needs them, whichever of
tvr and transformers is imported first: ``AutoModel.from_pretrained(dir)``, ``AutoProcessor.from_pretrained(dir)`` and
``pipeline("video-text-retrieval", model=dir)`` work on saved tvr folders after ``import tvr`` (see :mod:`tvr._lazy`).
"""

from __future__ import annotations

from . import _deprecated, _lazy

__version__ = "0.1.0"

# the modules whose public names (their ``__all__``) are tvr's: module -> names
EXPORTS = {
    "methods.registry": ("METHODS", "Method", "register_method"),
    "methods.clip4clip": ("CLIP4ClipConfig", "CLIP4ClipModel", "CLIP4ClipPreTrainedModel", "TemporalTransformerConfig"),
    "methods.dual_attention": ("DualAttentionConfig", "DualAttentionModel", "DualAttentionPreTrainedModel",
                               "dual_attention_lora_config", "get_dual_attention_peft_model"),
    "methods.eercf": ("EERCFConfig", "EERCFModel", "EERCFPreTrainedModel"),
    "methods.emcl": ("EMCLConfig", "EMCLModel", "EMCLPreTrainedModel"),
    "methods.internvideo": ("InternVideoConfig", "InternVideoModel", "InternVideoPreTrainedModel",
                            "InternVideoVideoEncoding"),
    "modeling": ("FrameEncoderOutput", "ImageTextRetrievalConfig", "ImageTextRetrievalPreTrainedModel", "ImageTextTower",
                 "MeanPHead", "RetrievalLossOutput", "RetrievalOutput", "SeqLSTMHead", "SeqTransfHead",
                 "TemporalTransformer", "TemporalTransformerConfig", "TextEncoding", "TOWER_FAMILIES",
                 "TightTransfHead", "TowerFamily", "VideoEncoding", "concat_encodings", "contrastive_loss",
                 "inflate_patch_kernel", "masked_mean", "mean_pool_normalized", "sigmoid_loss", "slice_encoding"),
    "processing": ("TEXT_PADDINGS", "TVRProcessor", "TVRProcessorKwargs", "TVRVideoProcessor",
                   "TVRVideoProcessorKwargs", "TVRVideosKwargs", "clip_frame_range", "normalize_videos",
                   "order_frame_indices", "processor_for_image_text_model", "per_second_frame_indices",
                   "sample_frame_indices", "segment_middle_frame_indices", "slice_frame_indices",
                   "train_clip_tokenizer"),
    "merging": ("merge_weights",),
}
# every sub-package and module, loaded on first use (`tvr.data`, `tvr.evaluation`, ...)
SUBPACKAGES = ("app", "cli", "convert", "data", "demo", "evaluation", "hub_cards", "loading", "merging", "methods",
               "modeling", "peft", "pipelines", "processing", "retrieval", "training", "utils")

_lazy_getattr, __dir__ = _lazy.lazy_names(__name__, EXPORTS, SUBPACKAGES)


def __getattr__(name: str):
    try:
        return _lazy_getattr(name)
    except AttributeError:
        return _deprecated.old_attribute(__name__, name)  # tvr 0.1's names, with a FutureWarning

__all__ = sorted({name for names in EXPORTS.values() for name in names})  # `from tvr import *`

_lazy.install()  # tvr's configs, models, processors and pipelines known to transformers on first need
# transformers' own adapter loading resolves tvr's relative adapter bases (`../base`) against the adapter folder
from .peft import install_relative_base_resolution  # noqa: E402  (light: json, os, pathlib)

install_relative_base_resolution()
_deprecated.install()  # tvr 0.1's import paths (tvr.modeling.modeling_clip4clip, ...) for one more release
