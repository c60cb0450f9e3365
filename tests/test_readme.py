"""The README's `bash` and `python` blocks run as written (issue 18), so the README cannot drift from the code.

A block preceded by `<!-- readme-test: skip (why) -->` is not run (real checkpoints, datasets, the Hub). The others
run in order in a folder holding `demo_output` from `tvr demo` on the reduced settings of `tests/test_demo.py` (what
`make demo` leaves, smaller), with the test fixtures standing in for what a user downloads: `STAND_INS` replaces
those names in the blocks. Shell blocks may hold only `tvr` commands, run through the `tvr` entry point in this
process (each must exit 0); Python blocks run with `exec`.
"""

import json
import re
import shlex
from pathlib import Path

import pytest

from stand_ins import word_tokenizer
from tvr.cli import console_main, main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b")
DEMO_ARGS = ["--train-videos", "8", "--val-videos", "4", "--test-videos", "5", "--labelled-videos", "4", "--epochs", "1",
             "--batch-size", "4"]


def readme_blocks(text: str) -> list[tuple[int, str, str, bool]]:
    """`(line, language, code, skipped)` of every fenced `bash` / `python` block of `text`."""
    blocks, lines, index = [], text.splitlines(), 0
    while index < len(lines):
        match = re.match(r"^```(bash|python)\s*$", lines[index])
        if not match:
            index += 1
            continue
        start = index
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        end = lines.index("```", start + 1)
        blocks.append((start + 1, match[1], "\n".join(lines[start + 1:end]), bool(SKIP.search(previous))))
        index = end + 1
    return blocks


def shell_commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", code)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readme")
    assert main(["demo", "--output", str(folder / "demo_output"), *DEMO_ARGS]) == 0
    tokenizer = folder / "stand-in-tokenizer"
    word_tokenizer(tokenizer, 320)  # fits the fixture checkpoint's 320-token text tower
    stand_ins = {
        "pytorch_model.bin.4": FIXTURES / "clip4clip" / "meanP_2d" / "pytorch_model.bin",
        "openai/clip-vit-base-patch32": tokenizer,
    }
    return folder, stand_ins


def test_readme_blocks_are_found_and_marked():
    blocks = readme_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    run = [block for block in blocks if not block[3]]
    assert {language for _, language, _, _ in run} == {"bash", "python"}  # the quickstart has both
    assert len(run) >= 3 and any(skipped for *_, skipped in blocks)


def test_readme_runs_as_written(workspace, monkeypatch, capsys):
    folder, stand_ins = workspace
    monkeypatch.chdir(folder)
    for line, language, code, skipped in readme_blocks((ROOT / "README.md").read_text(encoding="utf-8")):
        if skipped:
            continue
        for name, path in stand_ins.items():
            code = code.replace(name, str(path))
        if language == "python":
            exec(compile(code, f"README.md block at line {line}", "exec"), {"__name__": "__readme__"})
            continue
        for command in shell_commands(code):
            assert command[0] == "tvr", f"README.md line {line}: only `tvr` commands can run here, got {command}"
            code_ = console_main(command[1:])
            captured = capsys.readouterr()
            assert code_ == 0, f"README.md line {line}: `{shlex.join(command)}` failed:\n{captured.err[-2000:]}"
            if "--json" in command:
                assert json.loads(captured.out)[0]["results"]
    # the quickstart's claim: `tvr eval` reproduces the demo's own numbers
    mine = json.loads((folder / "demo_output" / "my_eval.json").read_text())
    demo = json.loads((folder / "demo_output" / "eval_results.json").read_text())
    assert {key: mine[key] for key in demo if key.startswith(("t2v_", "v2t_"))} == pytest.approx(
        {key: value for key, value in demo.items() if key.startswith(("t2v_", "v2t_"))})


def test_readme_matches_the_package():
    """Item 9: the Python version is setup.cfg's, and nothing points at files a user does not have."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    required = re.search(r"python_requires = >=(\S+)", (ROOT / "setup.cfg").read_text())[1]
    assert f"Python {required} or newer" in text
    for stale in ("DESIGN.md", "../shared", "the seeds", "torch_dtype=", "--model_kwargs", "--push_to_hub"):
        assert stale not in text, stale
    assert "source .venv/bin/activate" in text


# names the README uses that are not tvr's own: transformers' test mixins, torch / transformers attributes
EXTERNAL_NAMES = {"ConfigTester", "ModelTesterMixin", "ProcessorTesterMixin", "VideoProcessingTestMixin",
                  "base_model_class", "inputs_embeds", "retain_grad", "to_empty"}


def test_readme_names_only_what_exists():
    """Every dotted `tvr.*` name resolves (and is not one of tvr 0.1's moved names), and every code identifier the
    README names exists in the source or the tests: a renamed or deleted function cannot linger in the docs."""
    import importlib

    from tvr._deprecated import ATTRIBUTES, MODULES

    readme = (ROOT / "README.md").read_text()
    unresolved = []
    # a line that speaks of tvr 0.1 may name its old paths
    current = "\n".join(line for line in readme.splitlines() if "tvr 0.1" not in line)
    for dotted in sorted(set(re.findall(r"`(tvr(?:\.\w+)+)", current))):
        parts, obj = dotted.split("."), None
        for end in range(len(parts), 0, -1):  # the longest importable module, then attributes
            module_name = ".".join(parts[:end])
            if module_name in MODULES:
                unresolved.append(f"{dotted} (a tvr 0.1 path)")
                break
            try:
                obj = importlib.import_module(module_name)
            except ModuleNotFoundError:
                continue
            for attribute in parts[end:]:
                if attribute in ATTRIBUTES.get(getattr(obj, "__name__", ""), {}) or not hasattr(obj, attribute):
                    unresolved.append(dotted)
                    break
                obj = getattr(obj, attribute)
            break
    code = " ".join(path.read_text() for folder in ("src", "tests") for path in (ROOT / folder).rglob("*.py"))
    words = set(re.findall(r"\w+", code)) | EXTERNAL_NAMES
    named = set(re.findall(r"`([A-Za-z_]\w*_\w*|[A-Z][a-z]+[A-Z]\w*)(?=[(`.])", readme))
    assert unresolved == [] and sorted(named - words) == []
