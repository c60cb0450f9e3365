"""The index journey as a user types it (issue 22 item 1, issue 23 items 1-2, 8): `tvr index` into occupied folders,
re-indexing, a broken video, a second run while one holds the lock, then `tvr search` with a retrained model, a model
of another width and a damaged index. The first command of each case is the real CLI in a subprocess
(`python -m tvr`); its variations run the same `tvr` entry point in this process (a subprocess costs seconds)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_retrieval import corpus, saved_model, tiny_model  # noqa: F401  (fixtures)
from tvr.cli import console_main
from tvr.retrieval.index import INDEX_FILES
from tvr.retrieval.shards import index_lock
from tvr.utils.fingerprint import weights_fingerprint
from tvr.utils.output_dir import MARKER

REPO = Path(__file__).resolve().parents[1]


def tvr(*args, cwd=None) -> subprocess.CompletedProcess:
    """``tvr ARGS...`` as typed, in a subprocess; CPU, offline."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def tvr_here(capsys, *args) -> subprocess.CompletedProcess:
    """``tvr ARGS...`` through the command's entry point in this process (what the subprocess runs)."""
    code = console_main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {os.fspath(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("tvr: error:")]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


@pytest.fixture(scope="module")
def project(corpus, saved_model, tmp_path_factory):  # noqa: F811
    """A user's project folder: the model, a copy of the videos plus a broken one, captions and a config."""
    _, _, video_dir = corpus
    model_dir, _ = saved_model
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(model_dir, root / "model")
    shutil.copytree(video_dir, root / "videos")
    (root / "videos" / "broken.mp4").write_bytes(b"not a video")
    (root / "captions.csv").write_text("video,caption\ntest_00000.mp4,a red square\n")
    (root / "config.yaml").write_text("epochs: 5\n")
    return root


def test_index_never_deletes_what_it_did_not_write(project, capsys):
    before = snapshot(project)
    # OUT = the project folder holding other files (before: wiped, "indexed 6 videos", exit 0): refused, naming what
    # it holds; checked before the model is loaded (a missing model folder is not even looked at)
    error = one_error_line(tvr("index", project / "no-such-model", project / "videos", project, "--device", "cpu"))
    assert f"index folder '{project}' is not a tvr index folder and holds 'captions.csv', 'config.yaml'" in error
    assert "does not replace or delete files it did not write" in error
    # OUT = VIDEOS and OUT inside VIDEOS: refused, the videos intact
    for out in (project / "videos", project / "videos" / "my.index"):
        error = one_error_line(tvr_here(capsys, "index", project / "model", project / "videos", out, "--device", "cpu"))
        assert "is inside the input folder" in error and str(project / "videos") in error
    # a folder the user named like the partial folder is not tvr's either
    (project.parent / "other.index.partial").mkdir()
    (project.parent / "other.index.partial" / "notes.txt").write_text("mine")
    error = one_error_line(tvr_here(capsys, "index", project / "model", project / "videos",
                                    project.parent / "other.index", "--device", "cpu"))
    assert "resume folder" in error and "'notes.txt'" in error
    assert (project.parent / "other.index.partial" / "notes.txt").read_text() == "mine"
    assert snapshot(project) == before
    assert not (project / "videos" / "my.index").exists() and not (project / "videos.partial").exists()


def test_index_then_reindex_reports_a_broken_video_once(project, tmp_path, capfd):
    out = tmp_path / "my.index"
    for again in (False, True):  # the second run replaces the index tvr wrote
        command = ("index", project / "model", project / "videos", out, "--device", "cpu", "--batch-size", "4")
        run = tvr_here(capfd, *command) if again else tvr(*command)  # capfd: the decoders' own logs too
        assert run.returncode == 0, run.stderr
        assert "indexed 6 videos" in run.stdout and "1 could not be decoded" in run.stdout
        # reported once: one line naming it, no decoder logs, no warning repeating it
        said = [line for line in (run.stdout + run.stderr).splitlines() if "broken.mp4" in line]
        assert len(said) == 1 and said[0].startswith("not indexed (could not decode): "), run.stdout + run.stderr
        assert sorted(os.listdir(out)) == sorted([*INDEX_FILES, MARKER])
        assert sorted(os.listdir(tmp_path)) == ["my.index"]  # no partial folder, no lock file left
    config = json.loads((out / "index_config.json").read_text())
    assert config["weights"] == weights_fingerprint(project / "model")
    videos = json.loads((out / "videos.json").read_text())
    assert sorted(videos["fingerprints"]) == sorted(str(path) for path in (project / "videos").iterdir())


def test_a_second_index_run_on_one_folder_fails_at_once(project, tmp_path):
    out = tmp_path / "my.index"
    with index_lock(out):  # another run holds it
        error = one_error_line(tvr("index", project / "model", project / "videos", out, "--device", "cpu"))
    assert f"index folder '{out}' is being written by another `tvr index` run (process {os.getpid()}" in error
    assert "wait for it to finish or choose another folder" in error
    assert not out.exists() and not (tmp_path / "my.index.partial").exists()


def test_search_refuses_a_retrained_model_another_width_and_a_damaged_index(project, corpus, tmp_path,  # noqa: F811
                                                                             capsys):
    _, processor, _ = corpus
    model_dir = tmp_path / "model"
    shutil.copytree(project / "model", model_dir)
    out = tmp_path / "my.index"
    assert tvr_here(capsys, "index", model_dir, project / "videos", out, "--device", "cpu").returncode == 0
    query = "a red square moves left"
    run = tvr("search", out, query, "--top-k", "2", "--json", "--device", "cpu")
    assert run.returncode == 0, run.stderr
    first = json.loads(run.stdout)
    assert [result["score_name"] for result in first[0]["results"]] == ["similarity"] * 2
    # the app shows the same videos with the same scores, under the same name
    from tvr.app.demo import RetrievalDemo

    _, table = RetrievalDemo(model_dir, index=out, device="cpu").search(query, top_k=2)
    assert "| rank | video | similarity |" in table
    assert [row.split(" | ")[1:3] for row in table.splitlines()[-2:]] == [
        [os.path.basename(result["path"]), f"{result['score']:.3f} |"] for result in first[0]["results"]]

    # the model folder retrained in place (same config, new weights): refused, both fingerprints and the fix named
    indexed = weights_fingerprint(model_dir)
    retrained = tiny_model(processor, "seqTransf")
    next(retrained.temporal.parameters()).data += 0.5
    retrained.save_pretrained(model_dir)
    error = one_error_line(tvr("search", out, query, "--device", "cpu"))
    assert f"built from {indexed}, now {weights_fingerprint(model_dir)}" in error
    assert "changed since it was indexed" in error and "--allow-model-change" in error
    run = tvr_here(capsys, "search", out, query, "--top-k", "2", "--json", "--device", "cpu", "--allow-model-change")
    assert run.returncode == 0 and len(json.loads(run.stdout)[0]["results"]) == 2, run.stderr

    # a model of another embedding width: one line naming both widths, not FAISS's bare assert
    from model_testers import RetrievalModelTester

    tokenizer = processor.tokenizer
    text_config = {"vocab_size": len(tokenizer), "max_position_embeddings": 16,
                   "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    wide = RetrievalModelTester(text_config=text_config, max_words=16, projection_dim=24).model()
    dim = json.loads((out / "index_config.json").read_text())["dim"]
    assert dim != 24
    wide.save_pretrained(model_dir)
    error = one_error_line(tvr_here(capsys, "search", out, query, "--device", "cpu", "--allow-model-change"))
    assert f"holds {dim}-dim video embeddings, the model makes 24-dim ones" in error

    # a truncated index_config.json: one line naming the file and the fix
    config = out / "index_config.json"
    config.write_text(config.read_text()[:40])
    error = one_error_line(tvr_here(capsys, "search", out, query, "--device", "cpu"))
    assert "index_config.json is damaged" in error and "rebuild the index with `tvr index`" in error
    error = one_error_line(tvr_here(capsys, "search", out, "--info"))
    assert "index_config.json is damaged" in error


def test_index_workers_of_a_launcher_exit_with_it(project, monkeypatch, capsys):
    """Issue 23 item 5: under torchrun / accelerate launch, each `tvr index` worker asks to die with its launcher
    (the mechanism itself, prctl or a parent watch, is tested in tests/test_output_dir.py)."""
    import tvr.utils.process as process

    asked = []
    monkeypatch.setattr(process, "launched_worker", lambda: True)
    monkeypatch.setattr(process, "exit_with_parent", lambda: asked.append(True))
    # the run stops right after (its folder is refused): the request comes first, before any work
    one_error_line(tvr_here(capsys, "index", project / "model", project / "videos", project / "videos"))
    assert asked == [True]
