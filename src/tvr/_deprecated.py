"""tvr 0.1's import paths, kept working for one release (each use warns with a ``FutureWarning`` naming the new path).

The methods moved from ``tvr.modeling`` / ``tvr.convert`` / ``tvr.evaluation`` into ``tvr.methods.<name>``. An old
module name is served by a meta path finder as the new module itself (one module object, so patching either name
patches both); names that ``tvr.modeling`` used to export are served by its module ``__getattr__``. Everything about
the old layout is in this file: nothing else in tvr imports by an old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

METHOD_PACKAGES = ("clip4clip", "emcl", "eercf", "internvideo", "dual_attention")

MODULES = {
    **{f"tvr.modeling.configuration_{name}": f"tvr.methods.{name}.configuration" for name in METHOD_PACKAGES},
    **{f"tvr.modeling.modeling_{name}": f"tvr.methods.{name}.modeling" for name in METHOD_PACKAGES},
    **{f"tvr.convert.{name}": f"tvr.methods.{name}.convert" for name in METHOD_PACKAGES},
    "tvr.modeling.em": "tvr.methods.emcl.em",
    "tvr.modeling.rerank": "tvr.methods.eercf.rerank",
    "tvr.modeling.methods": "tvr.methods",
    "tvr.evaluation.internvideo": "tvr.methods.internvideo.evaluation",
}

# tvr 0.1's names for the shared base classes (they hold SigLIP towers too, not only CLIP)
RENAMED = {"CLIPRetrievalConfig": "ImageTextRetrievalConfig",
           "CLIPRetrievalPreTrainedModel": "ImageTextRetrievalPreTrainedModel"}

# names tvr.modeling (and tvr.convert, tvr.evaluation, tvr.peft) exported in tvr 0.1 -> the module that holds them
# now ("module:new_name" where the name changed too)
ATTRIBUTES = {
    "tvr": {old: f"tvr.modeling:{new}" for old, new in RENAMED.items()},
    "tvr.modeling.configuration_base": {"CLIPRetrievalConfig": "tvr.modeling:ImageTextRetrievalConfig"},
    "tvr.modeling.base": {"CLIPRetrievalPreTrainedModel": "tvr.modeling:ImageTextRetrievalPreTrainedModel"},
    "tvr.modeling": {
        **{old: f"tvr.modeling:{new}" for old, new in RENAMED.items()},
        "METHODS": "tvr.methods", "Method": "tvr.methods", "register_method": "tvr.methods",
        "CLIP4ClipConfig": "tvr.methods.clip4clip", "CLIP4ClipModel": "tvr.methods.clip4clip",
        "CLIP4ClipPreTrainedModel": "tvr.methods.clip4clip", "EMCLConfig": "tvr.methods.emcl",
        "EMCLModel": "tvr.methods.emcl", "EERCFConfig": "tvr.methods.eercf", "EERCFModel": "tvr.methods.eercf",
        "InternVideoConfig": "tvr.methods.internvideo", "InternVideoModel": "tvr.methods.internvideo",
        "InternVideoPreTrainedModel": "tvr.methods.internvideo",
        "InternVideoVideoEncoding": "tvr.methods.internvideo",
        "DualAttentionConfig": "tvr.methods.dual_attention", "DualAttentionModel": "tvr.methods.dual_attention",
    },
    "tvr.convert": {
        "convert_clip4clip_checkpoint": "tvr.methods.clip4clip.convert",
        "convert_clip4clip_state_dict": "tvr.methods.clip4clip.convert",
    },
    "tvr.evaluation": {"internvideo_metrics": "tvr.methods.internvideo.evaluation"},
    "tvr.peft": {
        **{name: "tvr.methods.dual_attention.adapter" for name in (
            "GLOBAL_TOKENS_MODULE", "LORA_TARGET_MODULES", "dual_attention_lora_config",
            "get_dual_attention_peft_model")},
    },
}

def _moved(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new} in tvr 0.2; the old name goes in the next release", FutureWarning,
                  stacklevel=3)


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return None  # a throwaway module: exec_module puts the real one in its place

    def exec_module(self, module) -> None:
        _moved(module.__name__, self.target)
        sys.modules[module.__name__] = importlib.import_module(self.target)


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in MODULES:
            return importlib.machinery.ModuleSpec(name, _AliasLoader(MODULES[name]))
        return None


def old_attribute(module_name: str, name: str):
    """The object tvr 0.1 exported as ``module_name.name`` (with a ``FutureWarning``); ``AttributeError`` when there
    is none."""
    if name not in ATTRIBUTES.get(module_name, {}):
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
    target, _, new_name = ATTRIBUTES[module_name][name].partition(":")
    _moved(f"{module_name}.{name}", f"{target}.{new_name}" if new_name else target)
    return getattr(importlib.import_module(target), new_name or name)


def _module_getattr(module_name: str, own=None):
    def __getattr__(name: str):
        if name in ATTRIBUTES[module_name] or own is None:
            return old_attribute(module_name, name)
        return own(name)  # the package's own lazy names

    __getattr__.serves_old_names = True
    return __getattr__


def _serve_old_attributes(module) -> None:
    own = vars(module).get("__getattr__")
    if not getattr(own, "serves_old_names", False):
        module.__getattr__ = _module_getattr(module.__name__, own)


def install() -> None:
    """Serve the old names (idempotent); imports nothing: the old attributes of ``tvr.modeling`` and the others go in
    when each is imported."""
    from ._lazy import after_import

    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
        for module_name in ATTRIBUTES:
            if module_name != "tvr":  # tvr's own __getattr__ asks old_attribute
                after_import(module_name, _serve_old_attributes)


__all__ = ["ATTRIBUTES", "MODULES", "RENAMED", "install", "old_attribute"]
