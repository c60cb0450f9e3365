"""`tvr compress`: frame rate, size and frames of the outputs, resuming, and failure reporting."""

import os
import subprocess
import sys

import av
import numpy as np
import pytest

from tvr.cli import main
from tvr.data.synthetic import write_video
from tvr.processing.compress import compressed_size
from tvr.utils.output_dir import MARKER


def coded_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """Solid frames whose red / green levels spell the frame index (16 levels each)."""
    index = np.arange(num_frames)
    colours = (np.stack([index % 16, index // 16 % 16, np.zeros_like(index)], axis=-1) * 16 + 8).astype(np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (num_frames, height, width, 3)).copy()


def read_codes(path) -> tuple[list[int], float, tuple[int, int]]:
    """Frame codes, frame rate and (height, width) of a video (PyAV: decord2 cannot copy 32-px-wide frames)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
        fps = float(stream.average_rate)
    digits = frames.mean(axis=(1, 2)).round().astype(int) // 16
    return (digits[:, 0] + 16 * digits[:, 1]).tolist(), fps, frames.shape[1:3]


@pytest.fixture
def input_dir(tmp_path):
    folder = tmp_path / "in"
    write_video(folder / "landscape.mp4", coded_frames(60, 48, 80), fps=30)  # 2 s
    write_video(folder / "sub" / "portrait.mkv", coded_frames(50, 80, 48), fps=25)  # 2 s
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 10)
    (folder / "notes.txt").write_text("ignored: not a video extension")
    return folder


def test_compressed_size_keeps_aspect_with_even_sides():
    assert compressed_size(320, 240) == (298, 224)  # 320 * 224 / 240 = 298.7 -> 298
    assert compressed_size(1280, 720) == (398, 224)
    assert compressed_size(240, 320) == (224, 298)
    assert compressed_size(80, 48, size=32) == (52, 32)  # 53.3 -> 52 (even)
    assert compressed_size(100, 100, size=33) == (32, 32)


def test_compress_folder_then_resume(input_dir, tmp_path, capsys):
    output_dir = tmp_path / "out"
    code = main(["compress", str(input_dir), str(output_dir), "--size", "32", "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 1  # one file failed
    assert "compressed 2, skipped 0 already done, failed 1" in captured.out
    assert "broken.mp4" in captured.err

    landscape, portrait = output_dir / "landscape.mp4", output_dir / "sub" / "portrait.mp4"
    codes, fps, size = read_codes(landscape)
    assert fps == 3.0 and size == (32, 52)
    # FFmpeg's fps filter (as `ffmpeg -r 3`): output frame k is the last input frame i with round(i * 3 / 30) == k
    assert codes == [4, 14, 24, 34, 44, 54]
    codes, fps, size = read_codes(portrait)
    assert fps == 3.0 and size == (52, 32)
    assert codes == [4, 12, 20, 29, 37, 45]  # round(i * 3 / 25) == k; the 2 s clip ends before tick 6
    assert sorted(path.name for path in output_dir.rglob("*")) == [MARKER, "landscape.mp4", "portrait.mp4", "sub"]

    # a second run skips finished files; a partial file left by a killed run does not count as finished
    mtime = os.path.getmtime(portrait)
    landscape.unlink()
    (output_dir / ".landscape.mp4.partial").write_bytes(b"half a file")
    code = main(["compress", str(input_dir), str(output_dir), "--size", "32", "--workers", "1"])
    captured = capsys.readouterr()
    assert code == 1
    assert "compressed 1, skipped 1 already done, failed 1" in captured.out
    assert os.path.getmtime(portrait) == mtime
    assert read_codes(landscape)[0] == [4, 14, 24, 34, 44, 54]
    assert not (output_dir / ".landscape.mp4.partial").exists()


def run_tvr(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_output_folder_rules_through_the_cli(input_dir, tmp_path):
    """OUT == IN, OUT inside IN and a folder holding someone's files are refused before anything is read or written;
    resuming into tvr's own OUT works."""
    (input_dir / "broken.mp4").unlink()
    before = sorted(os.listdir(input_dir))
    with pytest.raises(ValueError, match="is inside the input folder"):
        main(["compress", str(input_dir), str(input_dir), "--workers", "1"])
    result = run_tvr("compress", input_dir, input_dir / "out", "--size", "32", "--workers", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"tvr: error: output folder '{input_dir / 'out'}' is inside the input folder")
    assert sorted(os.listdir(input_dir)) == before

    project = tmp_path / "project"
    project.mkdir()
    (project / "landscape.mp4").write_bytes(b"someone's own video")
    result = run_tvr("compress", input_dir, project, "--size", "32", "--workers", "1")
    assert result.returncode == 1
    assert result.stderr.startswith(f"tvr: error: output folder '{project}' is not a tvr compressed videos folder "
                                    "and holds 'landscape.mp4'")
    assert os.listdir(project) == ["landscape.mp4"]
    assert (project / "landscape.mp4").read_bytes() == b"someone's own video"

    output = tmp_path / "out"
    assert run_tvr("compress", input_dir, output, "--size", "32", "--workers", "1").returncode == 0
    resumed = run_tvr("compress", input_dir, output, "--size", "32", "--workers", "1")
    assert resumed.returncode == 0 and "compressed 0, skipped 2 already done, failed 0" in resumed.stdout


def test_clean_folder_exits_zero(input_dir, tmp_path, capsys):
    (input_dir / "broken.mp4").unlink()
    arguments = ["compress", str(input_dir), str(tmp_path / "out"), "--fps", "5", "--size", "32", "--workers", "1"]
    assert main(arguments) == 0
    codes, fps, size = read_codes(tmp_path / "out" / "landscape.mp4")
    assert fps == 5.0 and len(codes) == 10


def test_one_frame_and_cut_videos_are_compressed(tmp_path):
    from test_bad_videos import write_mp4
    from tvr.processing.compress import compress_video

    # one frame at 30 fps lasts 1/30 s, under one 3-fps interval: the fps filter alone rounds it to no frame
    write_video(tmp_path / "one.mp4", coded_frames(1, 32, 32), fps=30)
    assert compress_video(tmp_path / "one.mp4", tmp_path / "out" / "one.mp4", fps=3, size=32) == 1
    codes, fps, shape = read_codes(tmp_path / "out" / "one.mp4")
    assert codes == [0] and fps == 3 and shape == (32, 32)

    # a moov-first mp4 cut at 90 %: the frames before the cut are kept (PyAV stops at the damaged packet)
    full = write_mp4(tmp_path / "full.mp4", 40, fps=4, faststart=True)  # 10 s
    data = open(full, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[:int(len(data) * 0.9)])
    written = compress_video(tmp_path / "cut.mp4", tmp_path / "out" / "cut.mp4", fps=2, size=32)
    with av.open(str(tmp_path / "cut.mp4")) as container:
        decodable = 0
        try:
            for packet in container.demux(container.streams.video[0]):
                decodable += len(packet.decode())
        except av.error.FFmpegError:
            pass
    # 2 fps over the decodable seconds, rounded half up as FFmpeg's fps filter does
    assert 20 < decodable < 40 and written == int(decodable / 4 * 2 + 0.5)
    assert len(read_codes(tmp_path / "out" / "cut.mp4")[0]) == written
