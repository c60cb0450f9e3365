"""tvr: text-to-video retrieval on Hugging Face transformers.

Importing ``tvr`` registers every config, model and processor with the transformers Auto classes, so
``AutoModel.from_pretrained(dir)`` and ``AutoProcessor.from_pretrained(dir)`` work on saved tvr folders, and
registers tvr's pipelines (``pipeline("video-text-retrieval")``, ``pipeline("zero-shot-video-classification")``).
"""

from . import modeling, processing
from .modeling import *  # noqa: F401,F403  (registers every method: tvr.modeling.methods)
from .processing import *  # noqa: F401,F403
from .merging import merge_weights  # noqa: F401
from . import pipelines  # noqa: F401  (registers tvr's pipelines with transformers' PIPELINE_REGISTRY)

__version__ = "0.1.0"
