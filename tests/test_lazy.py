"""A lazy ``tvr`` (issue 24 item 2): ``import tvr`` loads neither torch nor transformers, every public name is still
``tvr.X`` / ``from tvr import X`` / in ``dir(tvr)``, and the Auto classes and ``pipeline()`` know tvr's models,
processors and pipelines in either import order. The import-order checks run in fresh interpreters."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tvr
from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer

ROOT = Path(__file__).resolve().parents[1]
LAZY_PACKAGES = ("tvr", "tvr.convert", "tvr.data", "tvr.evaluation", "tvr.hub_cards", "tvr.processing", "tvr.training")


def fresh(code: str) -> str:
    """Run ``code`` in a new interpreter; its stdout."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_import_tvr_loads_neither_torch_nor_transformers():
    out = fresh("import sys, tvr, tvr.cli, tvr.data, tvr.training, tvr.evaluation, tvr.processing, tvr.convert\n"
                "import tvr.hub_cards\n"
                "heavy = ('torch', 'transformers', 'datasets', 'tvr.methods', 'tvr.modeling')\n"
                "print(sorted(m for m in heavy if m in sys.modules))")
    assert out.strip() == "[]"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_public_name_is_reachable_and_listed(package):
    module = importlib.import_module(package)
    for source, names in module.EXPORTS.items():
        source_module = importlib.import_module(f"{package}.{source}")
        if package == "tvr":  # tvr's names are its sources' __all__
            assert set(names) == set(source_module.__all__), source
        for name in names:
            assert getattr(module, name) is getattr(source_module, name)
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        module.nothing_here


def test_tvr_namespace_is_tvr_0_1s():
    """Every name ``import tvr`` gave before it was lazy, and every sub-package (the two base classes under their new
    names; tvr 0.1's `CLIPRetrieval*` names: tests/test_layout.py)."""
    before = {"CLIP4ClipConfig", "CLIP4ClipModel", "CLIP4ClipPreTrainedModel", "ImageTextRetrievalConfig",
              "ImageTextRetrievalPreTrainedModel", "DualAttentionConfig", "DualAttentionModel",
              "DualAttentionPreTrainedModel", "EERCFConfig", "EERCFModel", "EERCFPreTrainedModel", "EMCLConfig",
              "EMCLModel", "EMCLPreTrainedModel", "FrameEncoderOutput", "ImageTextTower", "InternVideoConfig",
              "InternVideoModel", "InternVideoPreTrainedModel", "InternVideoVideoEncoding", "METHODS", "MeanPHead",
              "Method", "RetrievalLossOutput", "RetrievalOutput", "SUBPACKAGES", "SeqLSTMHead", "SeqTransfHead",
              "TEXT_PADDINGS", "TOWER_FAMILIES", "TVRProcessor", "TVRProcessorKwargs", "TVRVideoProcessor",
              "TVRVideoProcessorKwargs", "TVRVideosKwargs", "TemporalTransformer", "TemporalTransformerConfig",
              "TextEncoding", "TightTransfHead", "TowerFamily", "VideoEncoding", "clip_frame_range",
              "concat_encodings", "contrastive_loss", "convert", "data", "dual_attention_lora_config", "evaluation",
              "get_dual_attention_peft_model", "hub_cards", "inflate_patch_kernel", "loading", "masked_mean",
              "mean_pool_normalized", "merge_weights", "merging", "methods", "modeling", "normalize_videos",
              "order_frame_indices", "peft", "per_second_frame_indices", "pipelines", "processing",
              "processor_for_image_text_model", "register_method", "retrieval", "sample_frame_indices",
              "segment_middle_frame_indices", "sigmoid_loss", "slice_encoding", "slice_frame_indices",
              "train_clip_tokenizer", "training", "utils"}
    assert before <= set(dir(tvr))
    assert tvr.CLIP4ClipModel is tvr.METHODS["clip4clip"].model_class and tvr.TemporalTransformerConfig is (
        tvr.modeling.TemporalTransformerConfig)
    namespace = {}
    exec("from tvr import *", namespace)
    assert set(tvr.__all__) <= set(namespace) and "TVRProcessor" in namespace


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    """A tiny CLIP4Clip folder saved with its processor."""
    from model_testers import tiny_clip4clip_config, tiny_text_config

    root = tmp_path_factory.mktemp("lazy")
    tokenizer = train_clip_tokenizer(["a red square", "a blue circle moves left"], root / "tokenizer", vocab_size=540)
    text_config = tiny_text_config(vocab_size=len(tokenizer), max_position_embeddings=16,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    tvr.CLIP4ClipModel(tiny_clip4clip_config(text_config=text_config, max_words=16)).save_pretrained(root / "model")
    TVRProcessor(TVRVideoProcessor(size=16, crop_size=16, max_frames=4), tokenizer, max_words=16).save_pretrained(
        root / "model")
    return root / "model"


LOADS = ("from transformers import AutoModel, AutoProcessor, AutoVideoProcessor, pipeline\n"
         "assert type(AutoModel.from_pretrained(FOLDER)).__name__ == 'CLIP4ClipModel'\n"
         "assert type(AutoProcessor.from_pretrained(FOLDER)).__name__ == 'TVRProcessor'\n"
         "assert type(AutoVideoProcessor.from_pretrained(FOLDER)).__name__ == 'TVRVideoProcessor'\n"
         "assert type(pipeline('video-text-retrieval', model=FOLDER)).__name__ == 'VideoTextRetrievalPipeline'\n"
         "print('loaded')\n")


@pytest.mark.parametrize("first", [
    "import tvr\n",  # tvr first: the Auto modules are imported later, their mappings get the tripwire then
    "from transformers import AutoModel, AutoProcessor, pipeline\nimport tvr\n",  # tvr after the Auto classes
    # a transformers model imported first: its modeling module imports the Auto modules while it is half-imported
    "import tvr\nfrom transformers import CLIPModel\n",
])
def test_auto_classes_and_pipelines_know_tvr_in_either_import_order(saved_folder, first):
    assert fresh(f"FOLDER = {str(saved_folder)!r}\n{first}{LOADS}").strip().endswith("loaded")


def test_pipeline_of_a_model_object_and_the_task_list(saved_folder):
    out = fresh(f"FOLDER = {str(saved_folder)!r}\nimport tvr\nfrom transformers import pipeline\n"
                "from transformers.pipelines import get_supported_tasks\n"
                "assert 'zero-shot-video-classification' in get_supported_tasks()\n"
                "model = tvr.CLIP4ClipModel.from_pretrained(FOLDER)\n"
                "processor = tvr.TVRProcessor.from_pretrained(FOLDER)\n"
                "p = pipeline('video-text-retrieval', model=model, processor=processor)\n"
                "print(type(p).__name__)\n")
    assert out.strip().endswith("VideoTextRetrievalPipeline")


def test_registration_leaves_plain_mappings():
    """Once tvr is registered, transformers' mappings hold plain dicts again (nothing of tvr's hooks stays)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    assert "clip4clip" in CONFIG_MAPPING and CONFIG_MAPPING["clip4clip"] is tvr.CLIP4ClipConfig
    assert type(CONFIG_MAPPING._extra_content) is dict and type(PROCESSOR_MAPPING._extra_content) is dict
