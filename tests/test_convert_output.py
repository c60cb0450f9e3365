"""`tvr convert` owns its output folder: a new folder or one tvr wrote as a model; anything else is refused, untouched."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FIXTURES
from stand_ins import word_tokenizer
from test_convert_original_args import CONVERTERS
from test_dual_attention import ORIGINAL_ARGS as DAVRL_ARGS
from tvr.cli import main
from tvr.convert import convert_clip4clip_checkpoint
from tvr.utils.output_dir import MARKER, OutputDirError

CLIP4CLIP = FIXTURES / "clip4clip" / "meanP_2d" / "pytorch_model.bin"
OPENAI_CLIP = FIXTURES / "clip4clip" / "clip_openai_state_dict.bin"


def listing(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize("converter", ["clip", *CONVERTERS])
def test_every_converter_refuses_a_folder_holding_other_files(converter, tmp_path):
    checkpoint, *options = CONVERTERS.get(converter, [str(OPENAI_CLIP)])
    project = tmp_path / "project"
    project.mkdir()
    (project / "captions.csv").write_text("video,caption\n")
    (project / "config.json").write_text("{\"mine\": true}")  # a name a converter writes: not overwritten either
    before = listing(project)
    with pytest.raises(OutputDirError, match=r"output folder '.*project' is not a tvr model folder and holds "
                                             r"'captions.csv', 'config.json': tvr does not replace or delete"):
        main(["convert", converter, checkpoint, str(project), *options])
    assert listing(project) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["project"]  # no staging folder left behind


def test_reconversion_replaces_only_a_tvr_model_folder(tmp_path):
    out = tmp_path / "out"
    assert main(["convert", "clip4clip", str(CLIP4CLIP), str(out), "--max-frames", "4"]) == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker == {"kind": "model", "files": ["config.json", "model.safetensors"]}
    assert main(["convert", "clip4clip", str(CLIP4CLIP), str(out), "--max-frames", "6"]) == 0  # its own: replaced
    assert json.loads((out / "config.json").read_text())["max_frames"] == 6
    # a failed conversion leaves the folder as it was
    before = listing(out)
    with pytest.raises(ValueError, match="looks like an EERCF checkpoint"):
        main(["convert", "clip4clip", str(FIXTURES / "eercf" / "tiny_b4_f4_topk2" / "pytorch_model.bin"), str(out)])
    assert listing(out) == before
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match=r"is a tvr model folder that also holds 'notes.txt': tvr does not "
                                             r"replace"):
        main(["convert", "clip4clip", str(CLIP4CLIP), str(out)])
    assert (out / "notes.txt").read_text() == "mine"


def test_a_model_folder_tvr_did_not_mark_is_refused(tmp_path):
    # config.json + model.safetensors without tvr's marker: as likely a model downloaded from the Hub, never replaced
    out = tmp_path / "downloaded"
    convert_clip4clip_checkpoint(CLIP4CLIP, out)  # the Python API writes no marker
    before = listing(out)
    with pytest.raises(OutputDirError, match="not a tvr model folder and holds 'config.json', 'model.safetensors'"):
        main(["convert", "clip4clip", str(CLIP4CLIP), str(out)])
    assert listing(out) == before


def test_the_python_api_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "config.json").write_text("{\"mine\": true}")
    with pytest.raises(OutputDirError, match="not a tvr model folder and holds 'config.json'"):
        convert_clip4clip_checkpoint(CLIP4CLIP, tmp_path)
    assert (tmp_path / "config.json").read_text() == "{\"mine\": true}"


def test_output_inside_the_tokenizer_folder_is_refused(tmp_path):
    word_tokenizer(tmp_path / "tokenizer", 320)
    with pytest.raises(OutputDirError, match=r"is inside the input folder '.*tokenizer'"):
        main(["convert", "clip4clip", str(CLIP4CLIP), str(tmp_path / "tokenizer" / "model"), "--tokenizer",
              str(tmp_path / "tokenizer")])
    assert not (tmp_path / "tokenizer" / "model").exists()


def test_dual_attention_folder_is_claimed_and_marked(tmp_path):
    command = ["convert", "dual_attention", CONVERTERS["dual_attention"][0], str(tmp_path / "davrl"), "--original-args",
               DAVRL_ARGS]
    out = tmp_path / "davrl"
    state_dict = torch.load(command[2], weights_only=True)
    for key in [key for key in state_dict if key.startswith("clip.transformer.resblocks.0.attn.TVPt_LoRA")]:
        del state_dict[key]  # one layer without LoRA: refused after the base was written
    torch.save(state_dict, tmp_path / "partial.bin")
    with pytest.raises(ValueError, match="LoRA tensors for"):
        main([*command[:2], str(tmp_path / "partial.bin"), *command[3:]])
    assert not out.exists()  # the new folder it had started is gone
    assert main(command) == 0
    files = json.loads((out / MARKER).read_text())["files"]
    assert {"adapter_config.json", "adapter_model.safetensors", "base"} <= set(files)
    assert main(command) == 0  # its own folder: written again
    with pytest.raises(ValueError, match="frame_per_seg"):  # fails after the claim ...
        main([*command, "--set", "frame_per_seg=[4,4]"])
    assert main(command) == 0  # ... and the folder is still tvr's
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="also holds 'notes.txt'"):
        main(command)
    assert (out / "notes.txt").read_text() == "mine"
