"""Read the weights of a TorchScript archive (OpenAI's CLIP `.pt` files) without running any of its code.

`torch.jit.load` compiles the archive's `code/` and runs it: a class's `__setstate__` runs while loading, so a file can
print, loop forever or worse. The weights need none of that. An archive is a zip holding

    <name>/data.pkl            the module tree, pickled: objects of the archive's own classes (`__torch__.*`) whose
                               state is a dict of attributes, tensors as `torch._utils._rebuild_tensor_v2` calls
    <name>/data/<key>          the raw bytes of each tensor storage (the pickle's persistent ids name them)
    <name>/code/**.py          the classes' TorchScript source; each module class declares
                               `__parameters__ = [...]` and `__buffers__ = [...]`
    <name>/constants.pkl       tensors used as constants by the code (not part of the state dict)

`read_torchscript_state_dict` unpickles `data.pkl` with an unpickler that builds only tensors, storages, ordered
dicts, the list builders of TorchScript pickles and plain attribute containers for the archive's classes (no method
of theirs is ever called), and reads the parameter / buffer declarations from `code/` as text. The result is exactly
the archive's `state_dict()`.
"""

from __future__ import annotations

import collections
import os
import pickle
import re
import zipfile

import torch

# The storage classes TorchScript's pickler names -> their dtype.
STORAGE_DTYPES = {
    f"{name}Storage": dtype
    for name, dtype in (
        ("Float", torch.float32), ("Double", torch.float64), ("Half", torch.float16), ("BFloat16", torch.bfloat16),
        ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
        ("Byte", torch.uint8), ("Bool", torch.bool), ("ComplexFloat", torch.complex64),
        ("ComplexDouble", torch.complex128),
    )
}
# torch.jit._pickle's builders of typed lists and tags (what a module's list attributes pickle as): the list itself.
LIST_BUILDERS = ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "build_genericlist")
CLASS_LINE = re.compile(r"class (\w+)(?:\((\w*)\))?:")
DECLARED = re.compile(r"^  (__parameters__|__buffers__) = \[(.*)\]", re.MULTILINE)


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """Whether `path` is a TorchScript archive (a zip with `constants.pkl` or `code/`), not a `torch.save` zip."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


class ArchiveObject:
    """An object of one of the archive's TorchScript classes, rebuilt as data: its class and its pickled state.

    Only this `__setstate__` (which stores the state) ever runs; the archive's own methods are never compiled."""

    qualified_name = ""

    def __setstate__(self, state) -> None:
        self.state = state


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, requires_grad=False, hooks=None, metadata=None):
    """`torch._utils._rebuild_tensor_v2` for a storage read as a flat tensor: a view with the tensor's geometry."""
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _restore_type_tag(value, tag):
    return value


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript `data.pkl`: tensors and the archive's objects as data, nothing that runs code."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.classes: dict[tuple[str, str], type] = {}
        self.storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch.jit._pickle" and name in LIST_BUILDERS:
            return list
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return _restore_type_tag
        if module == "__torch__" or module.startswith("__torch__."):
            if (module, name) not in self.classes:
                self.classes[module, name] = type(name, (ArchiveObject,), {"qualified_name": f"{module}.{name}"})
            return self.classes[module, name]
        raise pickle.UnpicklingError(f"it names {module}.{name}, which an archive of weights never needs")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        if key not in self.storages:
            data = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
            itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if len(data) < numel * itemsize:
                raise pickle.UnpicklingError(f"storage {key} holds {len(data)} bytes, {numel * itemsize} expected")
            flat = torch.frombuffer(data, dtype=storage_type.dtype, count=numel) if numel else torch.empty(
                0, dtype=storage_type.dtype)
            self.storages[key] = flat
        return self.storages[key]


def _module_declarations(archive: zipfile.ZipFile, prefix: str) -> tuple[dict[str, list[str]], set[str], set[str]]:
    """From the archive's `code/` (read as text, never run): every module class's parameter + buffer names, the names
    of all declared classes, and the module classes that define their own `__setstate__`."""
    modules: dict[str, list[str]] = {}
    classes: set[str] = set()
    custom_state: set[str] = set()
    code = f"{prefix}/code/"
    for member in archive.namelist():
        if not (member.startswith(code) and member.endswith(".py")):
            continue
        package = member[len(code) : -len(".py")].replace("/", ".")
        body: list[str] = []
        current = None
        for line in archive.read(member).decode("utf-8", errors="replace").splitlines() + ["class _end:"]:
            match = CLASS_LINE.match(line)
            if match is None:
                body.append(line)
                continue
            if current is not None:
                name, base = current
                classes.add(f"{package}.{name}")
                text = "\n".join(body)
                if base == "Module":
                    declared = dict(DECLARED.findall(text))
                    modules[f"{package}.{name}"] = [
                        attribute for field in ("__parameters__", "__buffers__")
                        for attribute in re.findall(r'"([^"]*)"', declared.get(field, ""))]
                    if re.search(r"^  def __setstate__\(", text, re.MULTILINE):
                        custom_state.add(f"{package}.{name}")
            current, body = match.groups(), []
    return modules, classes, custom_state


def read_torchscript_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The `state_dict()` of a TorchScript archive, read as data: no code of the archive is compiled or run.

    Raises:
        ValueError: naming the file, when it is damaged, names anything but weights in its pickle, or holds a module
            that restores its state with its own `__setstate__` code (whose tensors only that code could name).
    """
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
            if len(pickles) != 1:
                raise ValueError("no <name>/data.pkl")
            prefix = pickles[0].split("/")[0]
            if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() not in (b"", b"little"):
                raise ValueError("big-endian archives are not supported")
            modules, classes, custom_state = _module_declarations(archive, prefix)
            with archive.open(pickles[0]) as file:
                root = _DataOnlyUnpickler(file, archive, prefix, path).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, RuntimeError, ValueError, OSError) as error:
        raise ValueError(f"TorchScript archive {path!r} could not be read as weights ({error}); it is damaged or not "
                         "a model archive (tvr reads its tensors as data and never runs its code)") from None
    if not isinstance(root, ArchiveObject):
        raise ValueError(f"TorchScript archive {path!r} holds no module (its data.pkl is a {type(root).__name__})")
    state_dict: dict[str, torch.Tensor] = {}
    _collect(root, "", modules, classes, custom_state, state_dict, path)
    return state_dict


def _collect(obj: ArchiveObject, prefix: str, modules, classes, custom_state, out: dict, path: str) -> None:
    """Add the parameters and buffers of the module `obj` and of its submodules (depth first) to `out`."""
    name = obj.qualified_name
    state = getattr(obj, "state", None)
    if name in custom_state or not isinstance(state, dict):
        raise ValueError(
            f"TorchScript archive {path!r}: its {'module ' + repr(prefix[:-1]) if prefix else 'root module'} ({name}) "
            "restores its state with its own __setstate__ code, which tvr does not run, so its tensors cannot be named; if you trust the file, "
            "load it with torch.jit.load and torch.save its state_dict() instead")
    # without code/ declarations (never seen from torch.jit.save), every tensor attribute is taken as a weight
    declared = modules.get(name, [key for key, value in state.items() if isinstance(value, torch.Tensor)])
    for attribute in declared:
        if isinstance(state.get(attribute), torch.Tensor):
            out[prefix + attribute] = state[attribute]
    for attribute, value in state.items():
        # submodules: objects of module classes; objects of other TorchScript classes are kept as data, not read
        if isinstance(value, ArchiveObject) and (value.qualified_name in modules or value.qualified_name not in classes):
            _collect(value, f"{prefix}{attribute}.", modules, classes, custom_state, out, path)


__all__ = ["ArchiveObject", "is_torchscript_archive", "read_torchscript_state_dict"]
