"""What keeps ``import tvr`` light: post-import hooks, and tvr's registration with transformers done on first need.

``import tvr`` imports neither torch nor transformers. tvr's models, processors and pipelines still reach the
transformers Auto classes before anything looks them up, in either import order:

- each Auto mapping tvr registers into (``CONFIG_MAPPING``, ``MODEL_MAPPING``, ``PROCESSOR_MAPPING``,
  ``VIDEO_PROCESSOR_MAPPING``) gets a tripwire as its ``_extra_content`` (the dict of registered, non-transformers
  entries, which every lookup of a model type / class name that transformers does not know itself reads): the first
  read imports :mod:`tvr.methods` (which registers every method) and puts a plain dict back;
- ``PIPELINE_REGISTRY``'s ``check_task`` / ``get_supported_tasks`` import :mod:`tvr.pipelines` (which registers the
  pipelines) the first time a task transformers does not know is asked for, then are the registry's own again.

A tripwire goes in when its transformers module has finished executing: at ``import tvr`` when the module is already
imported, else from :class:`AfterImportFinder`, a meta path finder that wraps the module's loader and runs the
callback after ``exec_module``. The callbacks import nothing (they set an attribute), so they cannot meet a
half-initialised module; the registration itself runs at lookup time, and waits (the tripwire stays) while any module
of tvr, torch, transformers, peft, ... is still being imported: transformers modules import the Auto modules at module
level (``modeling_layers.py``: ``from .models.auto import AutoModel``, which every ``modeling_*.py`` imports), so a
registration run from inside such an import would import tvr's models against a half-initialised transformers module.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from typing import Callable

# module name -> callbacks run with the module once it has executed
_PENDING: dict[str, list[Callable]] = {}


class _CallbackLoader(importlib.abc.Loader):
    """The module's own loader, then the callbacks; the module keeps its own loader."""

    def __init__(self, loader, callbacks: list[Callable]):
        self.loader = loader
        self.callbacks = callbacks

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        spec = module.__spec__
        spec.loader = module.__loader__ = self.loader  # no trace of the wrapper on the module
        self.loader.exec_module(module)
        module = sys.modules.get(spec.name, module)  # a module may put another object in its place (_LazyModule)
        for callback in self.callbacks:
            callback(module)

    def __getattr__(self, name):  # get_source, is_package, get_resource_reader, ...: the module's own loader's
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


class AfterImportFinder(importlib.abc.MetaPathFinder):
    """Finds a module with the finders after it and wraps its loader when callbacks wait for it."""

    def find_spec(self, name, path=None, target=None):
        if name not in _PENDING:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _CallbackLoader(spec.loader, _PENDING.pop(name))
            if not _PENDING:
                uninstall_finder()
        return spec


def uninstall_finder() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, AfterImportFinder)]


def after_import(name: str, callback: Callable) -> None:
    """Run ``callback(module)`` once module ``name`` has executed: now if it already has, else after its import."""
    module = sys.modules.get(name)
    if module is not None and not initializing(module):
        callback(module)
        return
    _PENDING.setdefault(name, []).append(callback)
    if not any(isinstance(finder, AfterImportFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, AfterImportFinder())


def initializing(module) -> bool:
    """Whether ``module`` is still executing (the import system's own flag, which its circular-import errors read)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def lazy_names(package: str, exports: dict[str, tuple[str, ...]], submodules: tuple[str, ...] = ()):
    """``__getattr__`` and ``__dir__`` for a package whose public names load on first use (PEP 562), as transformers'
    ``_LazyModule``: ``exports`` maps each of its modules (relative name) to the names it gives the package; a name
    loaded once is kept in the package's namespace."""
    if any(isinstance(names, str) for names in exports.values()):
        raise TypeError(f"{package}: each module's names are a tuple of names")
    where = {name: module for module, names in reversed(exports.items()) for name in names}  # the first module wins
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str):
        if name in where:
            value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(where) | set(submodules))

    return __getattr__, __dir__


# the packages tvr's registration imports; while one of them is half-imported, registration waits
REGISTRATION_IMPORTS = ("tvr", "torch", "torchvision", "transformers", "peft", "accelerate", "huggingface_hub",
                        "safetensors", "tokenizers")


def _importing_registration_imports() -> bool:
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in REGISTRATION_IMPORTS and initializing(module):
            return True
    return False


# --------------------------------------------------------------------------------- the Auto classes' mappings

# transformers module -> its mappings tvr registers into (tvr.methods.registry.register_method)
AUTO_MAPPINGS = {
    "transformers.models.auto.configuration_auto": ("CONFIG_MAPPING",),
    "transformers.models.auto.modeling_auto": ("MODEL_MAPPING",),
    "transformers.models.auto.processing_auto": ("PROCESSOR_MAPPING",),
    "transformers.models.auto.video_processing_auto": ("VIDEO_PROCESSOR_MAPPING",),
}
_tripped: list = []  # the mappings holding a tripwire


def register_methods() -> bool:
    """Register tvr's methods with the Auto classes (import :mod:`tvr.methods`) unless one of the packages it imports
    is half-imported; then every tripwire gives way to a plain dict. Returns whether the methods are registered."""
    if _importing_registration_imports():
        return False
    importlib.import_module("tvr.methods")
    while _tripped:
        mapping = _tripped.pop()
        mapping._extra_content = dict(dict.items(mapping._extra_content))
    for name in AUTO_MAPPINGS:
        _PENDING.pop(name, None)  # an Auto module imported from now on holds tvr's entries already
    if not _PENDING:
        uninstall_finder()
    return True


class _Tripwire(dict):
    """A mapping's ``_extra_content`` that registers tvr's methods before the first read."""

    def _read(self):
        if _tripped:
            register_methods()
        return self

    def __contains__(self, key):
        return dict.__contains__(self._read(), key)

    def __getitem__(self, key):
        return dict.__getitem__(self._read(), key)

    def get(self, key, default=None):
        return dict.get(self._read(), key, default)

    def keys(self):
        return dict.keys(self._read())

    def values(self):
        return dict.values(self._read())

    def items(self):
        return dict.items(self._read())

    def __iter__(self):
        return dict.__iter__(self._read())

    def __len__(self):
        return dict.__len__(self._read())


def _trip_mappings(module) -> None:
    if "tvr.methods" in sys.modules and not initializing(sys.modules["tvr.methods"]):
        return  # registered already
    for attribute in AUTO_MAPPINGS[module.__name__]:
        mapping = getattr(module, attribute, None)
        if mapping is not None and type(getattr(mapping, "_extra_content", None)) is dict:
            mapping._extra_content = _Tripwire(mapping._extra_content)
            _tripped.append(mapping)


# ------------------------------------------------------------------------------------------------ the pipelines


def _wrap_pipeline_registry(module) -> None:
    registry = module.PIPELINE_REGISTRY

    def register_pipelines() -> bool:
        if _importing_registration_imports():
            return False
        importlib.import_module("tvr.pipelines")
        for name in ("check_task", "get_supported_tasks"):
            vars(registry).pop(name, None)  # the registry's own methods again
        return True

    def check_task(task):
        if task not in registry.supported_tasks and task not in registry.task_aliases:
            register_pipelines()
        return type(registry).check_task(registry, task)

    def get_supported_tasks():
        register_pipelines()
        return type(registry).get_supported_tasks(registry)

    if "tvr.pipelines" not in sys.modules:
        registry.check_task = check_task
        registry.get_supported_tasks = get_supported_tasks


def install() -> None:
    """Register tvr with transformers on first need (idempotent)."""
    if getattr(install, "done", False):
        return
    install.done = True
    for name in AUTO_MAPPINGS:
        after_import(name, _trip_mappings)
    after_import("transformers.pipelines", _wrap_pipeline_registry)


__all__ = ["AUTO_MAPPINGS", "AfterImportFinder", "after_import", "install", "lazy_names", "register_methods"]
