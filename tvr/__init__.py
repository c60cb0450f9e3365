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

# the task packages load on first use (`tvr.data`, `tvr.evaluation`, ...), so `import tvr` stays as light as the
# Auto registration allows and every one of them is still reachable from it
SUBPACKAGES = ("convert", "data", "evaluation", "hub_cards", "retrieval", "training", "utils")


def __getattr__(name: str):
    if name in SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(SUBPACKAGES))
