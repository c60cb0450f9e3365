"""tvr: text-to-video retrieval on Hugging Face transformers.

Importing ``tvr`` registers every config, model and processor with the transformers Auto classes, so
``AutoModel.from_pretrained(dir)`` and ``AutoProcessor.from_pretrained(dir)`` work on saved tvr folders, and
registers tvr's pipelines (``pipeline("video-text-retrieval")``, ``pipeline("zero-shot-video-classification")``).
"""

from . import methods, modeling, processing  # importing tvr.methods registers every method
from .methods import METHODS, Method, register_method  # noqa: F401
from .methods.clip4clip import *  # noqa: F401,F403
from .methods.dual_attention import *  # noqa: F401,F403
from .methods.eercf import *  # noqa: F401,F403
from .methods.emcl import *  # noqa: F401,F403
from .methods.internvideo import *  # noqa: F401,F403
from .modeling import *  # noqa: F401,F403
from .processing import *  # noqa: F401,F403
from .merging import merge_weights  # noqa: F401
from . import pipelines  # noqa: F401  (registers tvr's pipelines with transformers' PIPELINE_REGISTRY)
from . import _deprecated

_deprecated.install()  # tvr 0.1's import paths (tvr.modeling.modeling_clip4clip, ...) for one more release

__version__ = "0.1.0"

# the task packages load on first use (`tvr.data`, `tvr.evaluation`, ...), so `import tvr` stays as light as the
# Auto registration allows and every one of them is still reachable from it
SUBPACKAGES = ("convert", "data", "evaluation", "hub_cards", "retrieval", "training", "utils")


def __getattr__(name: str):
    if name in SUBPACKAGES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    return _deprecated.old_attribute(__name__, name)  # tvr 0.1's names, with a FutureWarning


def __dir__():
    return sorted(set(globals()) | set(SUBPACKAGES))
