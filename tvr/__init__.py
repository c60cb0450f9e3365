"""tvr: text-to-video retrieval on Hugging Face transformers.

Importing ``tvr`` registers every config, model and processor with the transformers Auto classes, so
``AutoModel.from_pretrained(dir)`` and ``AutoProcessor.from_pretrained(dir)`` work on saved tvr folders.
"""

from . import modeling, processing
from .modeling import *  # noqa: F401,F403  (registers every method: tvr.modeling.methods)
from .processing import *  # noqa: F401,F403
from .merging import merge_weights  # noqa: F401

__version__ = "0.1.0"
