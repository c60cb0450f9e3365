"""tvr compress: re-encode a folder of videos as the original code does before training (3 fps, shorter side 224).

InternVideo's and EMCL-Net's compress_video.py run `ffmpeg -vf scale=... -r 3` on every file; this does the same
with PyAV's bundled FFmpeg (its fps and bicubic scale filters, H.264 at x264's defaults), so no system ffmpeg is
needed. Finished files are skipped, so an interrupted run can simply be started again. The output folder is tvr's
(marked as a ``compressed videos`` folder): a non-empty folder tvr did not write, the input folder itself or a folder
inside it is refused, and an existing file is never overwritten.

    tvr compress videos/ videos_3fps/ --fps 3 --size 224 --workers 8
"""

import argparse
import os
import sys
from fractions import Fraction
from multiprocessing import Pool
from pathlib import Path

from tqdm.auto import tqdm

from ..utils.atomic import fsync_path
from ..utils.output_dir import claim_output_dir, write_marker

OUTPUT_KIND = "compressed videos"

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv"}


def compressed_size(width: int, height: int, size: int = 224) -> tuple[int, int]:
    """``(width, height)`` with the shorter side ``size`` and the aspect ratio kept, both even (H.264 4:2:0).

    Example:
        >>> compressed_size(320, 240)
        (298, 224)
    """
    short = size - size % 2
    if width <= height:
        return short, int(height * short / width) // 2 * 2
    return int(width * short / height) // 2 * 2, short


def compress_video(source: str | os.PathLike, target: str | os.PathLike, fps: float = 3, size: int = 224) -> int:
    """Re-encode one video at ``fps`` frames per second with its shorter side ``size`` (video stream only).

    The file is written under a temporary name next to ``target`` and renamed when complete, so an interrupted
    run never leaves a partial file under the final name. A damaged or cut source gives the frames before the
    damage; a source shorter than one output frame interval (a 1-frame mp4) gives its first frame.

    Returns:
        The number of frames written.

    Raises:
        ValueError: the source has no decodable video frames. Errors of PyAV (unreadable files) pass through.
    """
    import av

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        with av.open(os.fspath(source)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            stream.thread_count = 1  # parallelism comes from the worker processes
            width, height = compressed_size(stream.codec_context.width, stream.codec_context.height, size)
            graph = _filter_graph(stream, width, height, fps)
            with av.open(os.fspath(partial), mode="w", format="mp4") as output:
                encoder = output.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
                encoder.thread_count = 1
                written, first_frame = 0, None
                for frame in _decodable_frames(container, stream):
                    if first_frame is None:
                        first_frame = frame
                    graph.vpush(frame)
                    written += _encode_filtered(graph, encoder, output)
                graph.vpush(None)
                written += _encode_filtered(graph, encoder, output)
                if written == 0 and first_frame is not None:
                    # shorter than one output interval: the fps filter rounds it to 0 frames; keep the first
                    single = _filter_graph(stream, width, height, None)
                    single.vpush(first_frame)
                    single.vpush(None)
                    written += _encode_filtered(single, encoder, output)
                for packet in encoder.encode():
                    output.mux(packet)
        if written == 0:
            raise ValueError("0 decodable frames")
        fsync_path(partial)  # on disk before the rename, so the final name never holds a partial file
        os.replace(partial, target)
        fsync_path(target.parent)
        return written
    finally:
        partial.unlink(missing_ok=True)


def _filter_graph(stream, width: int, height: int, fps: float | None):
    """FFmpeg filters ``fps`` (unless ``None``), bicubic ``scale`` and ``yuv420p`` for frames of ``stream``."""
    import av

    graph = av.filter.Graph()
    nodes = [graph.add_buffer(template=stream)]
    if fps is not None:
        nodes.append(graph.add("fps", f"fps={fps}"))
    nodes += [graph.add("scale", f"{width}:{height}:flags=bicubic"), graph.add("format", "yuv420p"),
              graph.add("buffersink")]
    graph.link_nodes(*nodes).configure()
    return graph


def _decodable_frames(container, stream):
    """The frames of ``stream`` up to the first damaged packet (a cut file keeps what precedes the cut)."""
    import av

    try:
        for packet in container.demux(stream):
            yield from packet.decode()
    except av.error.FFmpegError:
        return


def _encode_filtered(graph, encoder, output) -> int:
    """Encode every frame the filter graph has ready; returns how many."""
    import av

    count = 0
    while True:
        try:
            frame = graph.vpull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return count
        frame.pict_type = av.video.frame.PictureType.NONE  # let x264 choose frame types
        for packet in encoder.encode(frame):
            output.mux(packet)
        count += 1


def find_videos(input_dir: str | os.PathLike) -> list[Path]:
    """Video files under ``input_dir`` (recursively, by extension), as sorted paths relative to it."""
    root = Path(input_dir)
    return sorted(
        path.relative_to(root) for path in root.rglob("*") if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS
    )


def compress_folder(
    input_dir: str | os.PathLike, output_dir: str | os.PathLike, fps: float = 3, size: int = 224, workers: int = 1
) -> tuple[int, int, dict[str, str]]:
    """Compress every video under ``input_dir`` into ``output_dir`` (same relative paths, ``.mp4``).

    Videos whose output already exists are skipped, so a stopped run can be started again. Failures are
    collected, not raised.

    Raises:
        OutputDirError: ``output_dir`` is ``input_dir``, inside it, or a non-empty folder tvr did not write as
            compressed videos (checked before any video is read).

    Returns:
        ``(num_compressed, num_skipped, failures)`` with ``failures`` mapping input path -> reason.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise NotADirectoryError(f"input folder '{input_dir}' does not exist")
    claim_output_dir(output_dir, OUTPUT_KIND, inputs=[input_dir])
    output_dir.mkdir(parents=True, exist_ok=True)
    write_marker(output_dir, OUTPUT_KIND)  # files=None: a folder filled (and resumed) one video at a time
    jobs, failures, claimed, skipped = [], {}, {}, 0
    for relative in find_videos(input_dir):
        target = output_dir / relative.with_suffix(".mp4")
        if target in claimed:
            failures[str(relative)] = f"same output {target} as {claimed[target]}"
            continue
        claimed[target] = relative
        if target.exists():
            skipped += 1
        else:
            jobs.append((input_dir / relative, target, fps, size))

    compressed = 0
    pool = Pool(workers) if workers > 1 else _InlinePool()
    with pool, tqdm(total=len(jobs), desc="compress", unit="video") as bar:
        for source, error in pool.imap_unordered(_compress_job, jobs):
            if error is None:
                compressed += 1
            else:
                failures[str(source.relative_to(input_dir))] = error
            bar.update()
    return compressed, skipped, failures


def _compress_job(job: tuple[Path, Path, float, int]) -> tuple[Path, str | None]:
    source, target, fps, size = job
    try:
        compress_video(source, target, fps=fps, size=size)
        return source, None
    except Exception as error:  # any failure is reported for this file and the others go on
        return source, f"{type(error).__name__}: {error}"


class _InlinePool:
    """``Pool`` stand-in that runs jobs in this process (one worker: no process start-up, easy debugging)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    @staticmethod
    def imap_unordered(function, jobs):
        return map(function, jobs)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compress",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input_dir", help="folder of videos (searched recursively)")
    parser.add_argument("output_dir", help="where to write .mp4 files under the same relative paths")
    parser.add_argument("--fps", type=float, default=3, help="output frame rate (default: 3)")
    parser.add_argument("--size", type=int, default=224, help="shorter side in pixels, made even (default: 224)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="parallel processes (default: all cores)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    compressed, skipped, failures = compress_folder(
        args.input_dir, args.output_dir, fps=args.fps, size=args.size, workers=args.workers
    )
    print(f"compressed {compressed}, skipped {skipped} already done, failed {len(failures)}")
    for name, reason in sorted(failures.items()):
        print(f"  failed: {name}: {reason}", file=sys.stderr)
    return 1 if failures else 0
