"""transformers pipelines for tvr models, registered with ``PIPELINE_REGISTRY`` when ``tvr`` is imported:

- ``pipeline("video-text-retrieval", model=...)``: :class:`VideoTextRetrievalPipeline`;
- ``pipeline("zero-shot-video-classification", model=...)``: :class:`ZeroShotVideoClassificationPipeline`.
"""

from transformers.pipelines import PIPELINE_REGISTRY

from ..loading import AutoRetrievalModel
from .video_text_retrieval import VideoTextRetrievalPipeline
from .zero_shot_video_classification import ZeroShotVideoClassificationPipeline

PIPELINES = {
    "video-text-retrieval": VideoTextRetrievalPipeline,
    "zero-shot-video-classification": ZeroShotVideoClassificationPipeline,
}
for _task, _pipeline_class in PIPELINES.items():
    if PIPELINE_REGISTRY.supported_tasks.get(_task, {}).get("impl") is not _pipeline_class:
        PIPELINE_REGISTRY.register_pipeline(_task, pipeline_class=_pipeline_class, pt_model=AutoRetrievalModel,
                                            type="multimodal")

__all__ = ["PIPELINES", "VideoTextRetrievalPipeline", "ZeroShotVideoClassificationPipeline"]
