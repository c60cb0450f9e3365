"""Owned output folders (tvr.utils.output_dir), fingerprints and strict keys: the shared rules every writer uses."""

import json
import os

import pytest

from tvr.utils.atomic import atomic_directory
from tvr.utils.fingerprint import (
    FingerprintMismatch,
    check_fingerprint,
    file_fingerprint,
    same_file,
    weights_fingerprint,
)
from tvr.utils.output_dir import MARKER, OutputDirError, claim_output_dir, read_marker
from tvr.utils.values import check_known_keys


def test_atomic_directory_refuses_a_folder_it_did_not_write_and_keeps_its_files(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "captions.csv").write_text("keep me")
    with pytest.raises(OutputDirError, match="project.*not a tvr index folder.*captions.csv"):
        with atomic_directory(project, kind="index") as staging:
            (staging / "index_config.json").write_text("{}")
    assert (project / "captions.csv").read_text() == "keep me"
    assert sorted(os.listdir(project)) == ["captions.csv"] and sorted(os.listdir(tmp_path)) == ["project"]


def test_a_folder_tvr_wrote_is_replaced_and_records_its_files(tmp_path):
    out = tmp_path / "index"
    for value in ("1", "2"):
        with atomic_directory(out, kind="index") as staging:
            (staging / "vectors.bin").write_text(value)
    assert (out / "vectors.bin").read_text() == "2"
    assert read_marker(out) == {"kind": "index", "files": ["vectors.bin"]}
    (out / "notes.txt").write_text("mine")  # a user's file added later: the folder is no longer tvr's alone
    with pytest.raises(OutputDirError, match="notes.txt"):
        claim_output_dir(out, "index")
    with pytest.raises(OutputDirError, match="a tvr index folder"):
        claim_output_dir(out, "model")


def test_output_inside_or_equal_to_an_input_folder_is_refused(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for out in (videos, videos / "index"):
        with pytest.raises(OutputDirError, match="inside the input folder"):
            claim_output_dir(out, "index", inputs=[videos])
    assert claim_output_dir(tmp_path / "index", "index", inputs=[videos]) == (tmp_path / "index").resolve()


def test_legacy_folders_are_recognised_by_their_files(tmp_path):
    old = tmp_path / "old_index"
    old.mkdir()
    (old / "index_config.json").write_text("{}")
    (old / "encodings.safetensors").write_text("")
    claim_output_dir(old, "index", legacy=("index_config.json", "*.safetensors"))
    (old / "holiday.mp4").write_text("")
    with pytest.raises(OutputDirError, match="holiday.mp4"):
        claim_output_dir(old, "index", legacy=("index_config.json", "*.safetensors"))
    assert not (old / MARKER).exists()


def test_file_fingerprint_sees_a_same_size_rewrite_with_its_mtime_kept(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"a" * 3_000_000)
    recorded = file_fingerprint(video)
    stat = video.stat()
    video.write_bytes(b"a" * 2_999_999 + b"b")  # last byte changed, same size
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` keeps it
    assert file_fingerprint(video)["size"] == recorded["size"] and not same_file(recorded, video)
    assert json.loads(json.dumps(recorded)) == recorded


def test_weights_fingerprint_changes_with_the_weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 100)
    before = weights_fingerprint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"x" * 99 + b"y")
    after = weights_fingerprint(tmp_path)
    assert before != after
    with pytest.raises(FingerprintMismatch, match=f"built from {before}, now {after}; rebuild"):
        check_fingerprint("index 'i': model weights", before, after, "rebuild")
    check_fingerprint("legacy", None, after, "rebuild")


def test_unknown_keys_name_the_closest_known_one():
    with pytest.raises(ValueError, match=r"unknown key in processor_kwargs: 'max_framez' \(did you mean 'max_frames'\?\)"):
        check_known_keys(["fps", "max_framez"], ["fps", "max_frames", "slice_framepos"], "processor_kwargs")
    check_known_keys(["fps"], ["fps"], "processor_kwargs")


def test_a_worker_exits_when_its_launcher_is_killed(tmp_path):
    """The launcher (a shell) starts a worker in a session of its own, as torchrun does, then dies by SIGKILL."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "worker.pid"
    worker = ("import os, sys, time; from tvr.utils.process import exit_with_parent; exit_with_parent(); "
              f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    launcher = ("import subprocess, sys, time; "
                f"subprocess.Popen([sys.executable, '-c', {worker!r}], start_new_session=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", launcher])
    deadline = time.time() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() < deadline, "the worker did not start"
        time.sleep(0.1)
    worker_pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail("the worker outlived its killed launcher")


def test_a_finished_worker_exits_with_its_code_and_its_output_flushed():
    """exit_worker: a launcher's worker (LOCAL_RANK set) leaves without the interpreter's teardown, where gloo's
    threads can abort a finished run; what it printed still arrives, and its exit code is the run's."""
    import subprocess
    import sys

    code = ("import sys, tvr.utils.process as p; print('trained', flush=False); "
            "sys.stderr.write('note'); p.exit_worker(3)")
    for env, expected in (({"LOCAL_RANK": "1"}, 3), ({}, 3)):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                                env={**{k: v for k, v in os.environ.items() if k != "LOCAL_RANK"}, **env})
        assert (result.returncode, result.stdout, result.stderr) == (expected, "trained\n", "note")
