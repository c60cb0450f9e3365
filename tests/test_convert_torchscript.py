"""TorchScript archives (OpenAI's CLIP `.pt` files) are read as data: their tensors, never their code."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from typing import Tuple

import pytest
import torch
from torch import nn

from tvr.convert import load_original_state_dict
from tvr.convert.torchscript import is_torchscript_archive, read_torchscript_state_dict

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning")


@torch.jit.script
class SideEffect:
    """A TorchScript class whose `__setstate__` prints: `torch.jit.load` runs it, a data-only reader must not."""

    def __init__(self, count: int):
        self.count = count

    def __getstate__(self) -> int:
        return self.count

    def __setstate__(self, state: int):
        print("ARCHIVE CODE RAN")
        self.count = state


class Tower(nn.Module):
    """Parameters of several dtypes, a buffer, nested and mangled submodules, tensors that are not weights."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3, 2)
        self.register_buffer("positions", torch.arange(4))
        self.scale = nn.Parameter(torch.randn(2, 2).half())
        self.blocks = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2), nn.Linear(2, 2, bias=False))
        self.cache = torch.ones(2)  # a plain tensor attribute: not in state_dict
        self.side = SideEffect(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.proj(x)) + self.cache.sum() + self.side.count


class CustomState(nn.Module):
    """A module that keeps its weights through its own `__getstate__` / `__setstate__` code."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2))

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, bool]):
        print("ARCHIVE CODE RAN")
        self.weight = state[0]
        self.training = state[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def test_archive_tensors_are_read_without_running_its_code(tmp_path, capfd):
    module = Tower()
    torch.jit.save(torch.jit.script(module), tmp_path / "tower.pt")
    assert is_torchscript_archive(tmp_path / "tower.pt")
    assert any("/code/" in name for name in zipfile.ZipFile(tmp_path / "tower.pt").namelist())

    loaded = load_original_state_dict(tmp_path / "tower.pt")
    assert "ARCHIVE CODE RAN" not in capfd.readouterr().out
    expected = module.state_dict()
    assert list(loaded) == list(expected)  # parameters and buffers only, in state_dict order
    for key, value in expected.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key

    # the reference: torch.jit.load runs the archive's __setstate__ and gives the same tensors
    reference = torch.jit.load(tmp_path / "tower.pt").state_dict()
    assert "ARCHIVE CODE RAN" in capfd.readouterr().out
    assert all(torch.equal(loaded[key], value) for key, value in reference.items()) and reference.keys() == loaded.keys()


def test_traced_archive_is_read(tmp_path):
    module = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2)).eval()
    torch.jit.save(torch.jit.trace(module, torch.randn(1, 3)), tmp_path / "traced.pt")
    loaded = read_torchscript_state_dict(tmp_path / "traced.pt")
    assert loaded.keys() == module.state_dict().keys()
    assert all(torch.equal(loaded[key], value) for key, value in module.state_dict().items())


def test_module_with_its_own_setstate_is_refused_unrun(tmp_path, capfd):
    torch.jit.save(torch.jit.script(CustomState()), tmp_path / "custom.pt")
    with pytest.raises(ValueError, match=r"custom.pt': its root module \(__torch__\..*CustomState\) restores its state "
                                         r"with its own __setstate__ code, which tvr does not run"):
        load_original_state_dict(tmp_path / "custom.pt")
    assert "ARCHIVE CODE RAN" not in capfd.readouterr().out


def test_convert_clip_never_runs_archive_code(tmp_path):
    """`tvr convert clip` on an archive whose __setstate__ would print: the command's output shows it never ran."""
    torch.jit.save(torch.jit.script(CustomState()), tmp_path / "custom.pt")
    result = subprocess.run([sys.executable, "-m", "tvr", "convert", "clip", str(tmp_path / "custom.pt"),
                             str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "ARCHIVE CODE RAN" not in result.stdout + result.stderr
    assert result.stderr.startswith("tvr: error: TorchScript archive") and "__setstate__" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated", "foreign global", "missing storage"])
def test_damaged_archives_are_refused_naming_the_file(tmp_path, damage):
    module = nn.Linear(2, 2)
    torch.jit.save(torch.jit.script(module), tmp_path / "good.pt")
    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        data = (tmp_path / "good.pt").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        match = r"bad.pt' could not be read"  # no longer a zip: torch.load's path names the file too
    else:
        with zipfile.ZipFile(tmp_path / "good.pt") as good, zipfile.ZipFile(bad, "w") as out:
            for item in good.infolist():
                data = good.read(item)
                if damage == "foreign global" and item.filename.endswith("/data.pkl"):
                    data = data.replace(b"collections\nOrderedDict", b"posix\nsystem")
                if damage == "missing storage" and "/data/" in item.filename:
                    continue
                out.writestr(item, data)
        match = r"TorchScript archive '.*bad.pt' could not be read as weights"
    with pytest.raises(ValueError, match=match):
        load_original_state_dict(bad)

