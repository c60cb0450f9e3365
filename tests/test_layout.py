"""The package layout (issue 24): sub-packages import only downwards, with no cycle, not even inside function
bodies; a method is one folder; tvr 0.1's import paths still work (with a FutureWarning) for one release."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# low -> high: a module may import from its own sub-package and the ones before it. Commands (`tvr <command>`: the
# modules tvr.cli dispatches to, and tvr.cli / __main__) sit on top and may import anything.
LAYERS = ("utils", "modeling", "processing", "data", "convert", "evaluation", "peft", "merging", "methods", "loading",
          "hub_cards", "retrieval", "training", "pipelines", "app")


def command_modules() -> set[str]:
    from tvr.cli import COMMANDS

    return {command.module for command in COMMANDS.values()} | {"tvr.cli", "tvr.__main__"} | {
        ".".join(path.relative_to(SRC).with_suffix("").parts) for path in SRC.glob("tvr/*/__main__.py")}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every ``tvr.*`` module a file imports, anywhere in it (function bodies too), with the line."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    package = parts[:-1]  # a module's package; an __init__.py's is its own folder, the same parts
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            name = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            found += [(name, node.lineno)] + [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
    return [(name, line) for name, line in found if name.startswith("tvr.")]


def test_sub_packages_import_only_downwards():
    commands = command_modules()
    upward = []
    for path in sorted((SRC / "tvr").rglob("*.py")):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        parts = module.split(".")
        if module in commands or len(parts) < 2 or parts[1] in ("__init__", "_deprecated", "_lazy", "__main__"):
            continue  # the top: tvr/__init__.py, the old names, the lazy loading (strings only), the commands
        layer = LAYERS.index(parts[1])
        for name, line in imports_of(path):
            target = name.split(".")[1]
            # tvr._deprecated imports nothing of tvr at module level: any layer may read its table of moved names
            if target in LAYERS and LAYERS.index(target) > layer and name not in commands:
                upward.append(f"{path.relative_to(SRC)}:{line} imports {name} ({parts[1]} -> {target})")
    assert upward == []


def test_every_sub_package_has_a_layer():
    packages = {path.name for path in (SRC / "tvr").iterdir() if (path / "__init__.py").exists()}
    top = {"__init__", "__main__", "_deprecated", "_lazy", "cli", "demo"}
    modules = {path.stem for path in (SRC / "tvr").glob("*.py")} - top
    assert packages | modules <= set(LAYERS)


def test_a_method_is_one_folder_declaring_its_entry():
    import tvr
    from tvr.methods import METHODS, PACKAGES

    for package in PACKAGES:
        folder = SRC / "tvr" / "methods" / package
        assert {"__init__.py", "configuration.py", "modeling.py", "convert.py"} <= {p.name for p in folder.iterdir()}
        method = __import__(f"tvr.methods.{package}", fromlist=["METHOD"]).METHOD
        assert METHODS[method.model_type] is method and method.converter == f"tvr.methods.{package}.convert"
    assert METHODS["internvideo"].frame_sampling == "stride" and METHODS["dual_attention"].adapter is not None
    assert tvr.CLIP4ClipModel is METHODS["clip4clip"].model_class


def test_a_toy_method_is_one_folder(tmp_path, monkeypatch):
    """A new method: its folder (config, model, entry) and one registration; the Auto classes, the processor of its
    saved folders and the card's method name then work like any method's."""
    from transformers import AutoModel
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from model_testers import tiny_clip4clip_config
    from tvr.methods import METHODS, register_method
    from tvr.processing import TVRProcessor
    from tvr.processing.model_processor import FRAME_SAMPLING

    folder = tmp_path / "toy_method"
    folder.mkdir()
    (folder / "configuration.py").write_text(
        "from tvr.methods.clip4clip import CLIP4ClipConfig\n\n"
        "class ToyConfig(CLIP4ClipConfig):\n    model_type = 'toy'\n")
    (folder / "modeling.py").write_text(
        "from tvr.methods.clip4clip import CLIP4ClipModel\nfrom .configuration import ToyConfig\n\n"
        "class ToyModel(CLIP4ClipModel):\n    config_class = ToyConfig\n")
    (folder / "__init__.py").write_text(
        "from tvr.methods import Method\nfrom .configuration import ToyConfig\nfrom .modeling import ToyModel\n\n"
        "METHOD = Method('Toy', None, ToyConfig, ToyModel, frame_sampling='stride')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_method

    register_method(toy_method.METHOD)
    try:
        config = toy_method.ToyConfig(**tiny_clip4clip_config().to_dict() | {"model_type": "toy"})
        toy_method.ToyModel(config).save_pretrained(tmp_path / "saved")
        assert type(AutoModel.from_pretrained(tmp_path / "saved")) is toy_method.ToyModel
        assert PROCESSOR_MAPPING[toy_method.ToyConfig] is TVRProcessor
        assert FRAME_SAMPLING["toy"] == "stride" and METHODS["toy"].name == "Toy"
    finally:
        METHODS.pop("toy")
        FRAME_SAMPLING.pop("toy", None)


@pytest.mark.parametrize("statement, check", [
    ("from tvr.modeling.modeling_clip4clip import CLIP4ClipModel", "CLIP4ClipModel is tvr.CLIP4ClipModel"),
    ("from tvr.modeling import EMCLModel, METHODS", "EMCLModel is tvr.EMCLModel and METHODS is tvr.METHODS"),
    ("import tvr.convert.clip4clip as old", "old is tvr.methods.clip4clip.convert"),
    ("from tvr.modeling.em import initial_em_bases", "initial_em_bases is tvr.methods.emcl.em.initial_em_bases"),
    ("from tvr.peft import get_dual_attention_peft_model as f", "f is tvr.methods.dual_attention.get_dual_attention_peft_model"),
    ("from tvr.evaluation.internvideo import internvideo_metrics as f",
     "f is tvr.methods.internvideo.evaluation.internvideo_metrics"),
    ("from tvr.modeling import CLIPRetrievalPreTrainedModel as c", "c is tvr.ImageTextRetrievalPreTrainedModel"),
    ("from tvr.modeling.configuration_base import CLIPRetrievalConfig as c", "c is tvr.ImageTextRetrievalConfig"),
    ("c = tvr.CLIPRetrievalPreTrainedModel", "c is tvr.modeling.base.ImageTextRetrievalPreTrainedModel"),
])
def test_old_import_paths_still_work_with_a_warning(statement, check):
    code = ("import warnings, tvr, tvr.methods.emcl.em, tvr.methods.internvideo.evaluation\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            f"    warnings.simplefilter('always')\n    {statement}\n"
            f"assert {check}\n"
            "assert any(issubclass(w.category, FutureWarning) and 'moved to tvr.' in str(w.message) "
            "for w in caught), [str(w.message) for w in caught]\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_an_index_saved_by_tvr_0_1_names_its_encoding_class_by_the_old_module():
    """Saved folders are unchanged by the move: an index records its encoding class as module.QualName."""
    from tvr.methods.eercf.modeling import EERCFVideoEncoding
    from tvr.modeling.outputs import VideoEncoding
    from tvr.retrieval.shards import tvr_encoding_class

    assert tvr_encoding_class("tvr.modeling.modeling_eercf.EERCFVideoEncoding", "index") is EERCFVideoEncoding
    assert tvr_encoding_class("tvr.methods.eercf.modeling.EERCFVideoEncoding", "index") is EERCFVideoEncoding
    assert tvr_encoding_class("tvr.modeling.outputs.VideoEncoding", "index") is VideoEncoding
    with pytest.raises(ValueError, match="not a tvr video encoding"):
        tvr_encoding_class("os.system", "index")


def test_python_run_next_to_a_clone_named_tvr_imports_the_package(tmp_path):
    """With the package in src/, a clone folder named `tvr` in the working directory is no longer imported as an
    empty namespace package (README: Install)."""
    (tmp_path / "tvr").symlink_to(SRC.parent, target_is_directory=True)
    result = subprocess.run([sys.executable, "-c", "import tvr; print(tvr.__file__)"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("src/tvr/__init__.py")
