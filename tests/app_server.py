"""Start a tvr Gradio app in a child process on 127.0.0.1 and a free port, wait for it, always stop it; call its
API over loopback; run the tvr CLI as typed; make a fresh virtual environment without tvr (used by test_app.py,
test_space.py and test_journey_space.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 240  # seconds: importing gradio + torch and indexing on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(command: list[str], cwd: Path, tmp_path: Path, port: int | None = None, repo_on_path: bool = True,
                log_lines: list[str] | None = None):
    """Run ``command`` (a Python command line serving a Gradio app) with ``GRADIO_SERVER_NAME=127.0.0.1`` and
    ``GRADIO_SERVER_PORT`` set; yield its URL once it answers; kill it on exit, whatever happened.

    ``repo_on_path=False``: no ``PYTHONPATH`` (the command's own environment provides tvr, or not);
    ``log_lines``: receives the app's output lines once it stopped."""
    port = port or free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if not repo_on_path:
        del env["PYTHONPATH"]
    log = open(tmp_path / f"app-{port}.log", "w+b")
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(url + "/", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the app did not answer within {START_TIMEOUT} s:\n{_tail(log)}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
        if log_lines is not None:
            log_lines.extend(_tail(log, None).splitlines())
        log.close()


def call_api(url: str, api_name: str, *data, timeout: float = 120) -> list:
    """Call a Gradio endpoint through its HTTP API (POST, then read the event stream); returns its outputs."""
    request = urllib.request.Request(f"{url}/gradio_api/call/{api_name}",
                                     data=json.dumps({"data": list(data)}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}/gradio_api/call/{api_name}/{event_id}", timeout=timeout) as response:
        event = None
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line.split(":", 1)[1])
                if event == "error":
                    raise RuntimeError(f"{api_name} failed: {payload}")
                return payload
    raise RuntimeError(f"{api_name}: the event stream ended without a result")


def _tail(log, chars: int | None = 3000) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace")
    return text if chars is None else text[-chars:]


def run_tvr(*args, cwd: Path | None = None, **env_overrides: str) -> subprocess.CompletedProcess:
    """``python -m tvr ARGS`` as a user types it (this checkout's tvr; ``env_overrides`` added to the environment)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])),
           "HF_HUB_OFFLINE": "1", **env_overrides}
    return subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def fresh_venv(root: Path) -> Path:
    """A new virtual environment without tvr whose third-party packages are this environment's (no network): its
    site-packages gets a ``.pth`` naming a folder of links to ours, minus tvr's own entries (the editable finder
    and tvr's metadata). Returns its python."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                      text=True).strip()
    ours = Path(sysconfig.get_paths()["purelib"])  # this environment's site-packages
    links = root / "third-party"
    links.mkdir()
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(("tvr", "__editable__")) and entry.suffix != ".pth":
            (links / entry.name).symlink_to(entry)
    Path(purelib, "third-party.pth").write_text(f"{links}\n")
    return python


def save_demo_model(root: Path, num_videos: int) -> tuple[Path, Path, list[str]]:
    """``(model_dir, video_dir, captions)``: the demo's tiny (untrained) model saved with its processor under
    ``root``, and ``num_videos`` synthetic videos."""
    import torch

    from tvr.data import make_synthetic_dataset
    from tvr.demo import build_demo_model, build_demo_processor
    from tvr.processing import train_clip_tokenizer

    dataset = make_synthetic_dataset(root / "data", num_videos, size=32, fps=2, duration=4.0, num_events=2,
                                     progress=False)
    tokenizer = train_clip_tokenizer(list(dataset["caption"]), root / "tokenizer", vocab_size=600)
    torch.manual_seed(0)
    model_dir = root / "model"
    build_demo_model(tokenizer).save_pretrained(model_dir)
    build_demo_processor(tokenizer).save_pretrained(model_dir)
    return model_dir, root / "data" / "videos", list(dataset["caption"])
