"""tvr: text-to-video retrieval on Hugging Face transformers.

Importing ``tvr`` registers every config, model and processor with the transformers Auto classes, so
``AutoModel.from_pretrained(dir)`` and ``AutoProcessor.from_pretrained(dir)`` work on saved tvr folders.
"""

from transformers import AutoProcessor, AutoVideoProcessor

from . import modeling, processing
from .modeling import *  # noqa: F401,F403
from .processing import *  # noqa: F401,F403

# one processor serves every method: a saved model folder (config.json with a tvr model_type) resolves to it
for _config in (modeling.CLIP4ClipConfig, modeling.EMCLConfig, modeling.EERCFConfig):
    AutoProcessor.register(_config, processing.TVRProcessor, exist_ok=True)
    AutoVideoProcessor.register(_config, processing.TVRVideoProcessor, exist_ok=True)

__version__ = "0.1.0"
