"""``tvr index`` and ``tvr search``: index a folder of videos with a saved model, then search it with text.

Example::

    tvr index runs/clip4clip/best my_videos/ my_videos.index --batch-size 32   # killed? run it again: it resumes
    tvr search my_videos.index "a man is playing a guitar" --top-k 5     # ranked by the model, as `tvr eval`
    tvr search my_videos.index "a man is playing a guitar" --rerank-top-k 0   # FAISS's first stage alone
    tvr search my_videos.index --info                                    # backend, index type, ids, recall
    tvr index runs/clip4clip/best my_videos/ my_videos.index --update    # encode only new / changed videos
    tvr index my_videos.index --remove my_videos/old.mp4                 # drop a video (a path or a video_id)
    tvr index runs/clip4clip/best my_videos/ my.index --backend milvus --uri videos.db   # vectors in Milvus Lite

    # long videos: windows of 4, 8 and 16 s (or 1x,2x: multiples of the model's clip), half overlapping
    tvr index runs/clip4clip/best lectures/ lectures.index --windows 4,8,16 --stride 0.5
    tvr search lectures.index "the speaker draws a graph" --moments --top-k 5   # score path start-end
    tvr search lectures.index "the speaker draws a graph" --moments --refine --json

    # several processes encode shards; the main process builds the index (CPU workers: torchrun, as
    # `accelerate launch --cpu` starts one process)
    accelerate launch --num-processes 4 -m tvr.retrieval index runs/clip4clip/best videos.txt big.index   # 4 GPUs
    torchrun --standalone --nproc-per-node 2 -m tvr.retrieval index --device cpu my-model/ videos.txt big.index

The videos are a folder (searched recursively), a list file (``.txt``, one path a line, relative to the file), or a
dataset saved with ``save_to_disk`` / a tvr annotation file (``.jsonl``) with ``video_id`` and ``video_path``
columns (its ``test`` split when it has several).

The index folder must be new, empty or an index tvr wrote (replaced once the new one is complete); a folder holding
other files, or one inside the video folder, is refused before anything is encoded. One run at a time writes an
index (a lock beside it). The index records the fingerprints of the model weights and of every video; `tvr search`
refuses a model folder whose weights changed since (`--allow-model-change` to search anyway).

`--update` compares the videos with the index (path, size, hash of the first and last MiB), encodes only the new and
changed ones (resumable like a build), removes the rows of the vanished and changed ones and keeps the rest; the
model must be the one the index was built with. The new version replaces the old whole: a search running meanwhile
reads the old or the new index, and a killed update leaves the old one.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    index = subparsers.add_parser(
        "index", help="encode a folder of videos with a saved model into a searchable index",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument("model_dir", help="folder saved with save_pretrained (model + processor); with --remove: the "
                                         "index folder")
    index.add_argument("video_dir", nargs="?",
                       help="folder of videos (searched recursively), list file (.txt) or dataset")
    index.add_argument("index_dir", nargs="?", help="folder to write the index into")
    index.add_argument("--update", action="store_true",
                       help="update the index in INDEX_DIR in place: encode only new and changed videos, remove the "
                            "rows of vanished ones")
    index.add_argument("--remove", nargs="+", metavar="ID", default=None,
                       help="`tvr index INDEX_DIR --remove ID...`: remove videos (a dataset video_id or a path)")
    index.add_argument("--backend", choices=("faiss", "milvus"), default="faiss",
                       help="where the vectors live: faiss (a file in the index folder) or milvus (a collection at "
                            "--uri; `pip install tvr[milvus]`)")
    index.add_argument("--uri", default=None,
                       help="--backend milvus: a Milvus Lite file (videos.db) or a server (http://host:19530)")
    index.add_argument("--retrain-drift", type=float, default=0.2,
                       help="--update: once this fraction of the rows changed since the last check, re-measure the "
                            "IVF index's recall@10 and retrain it if it fell below its target")
    index.add_argument("--processor", default=None,
                       help="processor folder, or the model's tokenizer (folder or Hub id), for a model folder without "
                            "one (saved with the index)")
    index.add_argument("--batch-size", type=int, default=16, help="videos per forward pass")
    index.add_argument("--index-type", choices=("auto", "flat", "ivf", "ivf-hnsw"), default="auto",
                       help="auto: flat below 50,000 videos, else ivf-hnsw; flat: exact inner product; ivf: inverted "
                            "lists; ivf-hnsw: inverted lists, HNSW quantizer, 8-bit vectors, nprobe tuned")
    index.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4 * sqrt(number of videos))")
    index.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    index.add_argument("--on-bad-video", choices=("skip", "error"), default="skip",
                       help="a video that cannot be decoded: skip it (listed in the output) or stop with an error")
    index.add_argument("--target-recall", type=float, default=0.95,
                       help="recall@10 against exact search that the tuned ivf-hnsw index reaches")
    index.add_argument("--shard-size", type=int, default=None,
                       help="videos per shard of encodings (the unit of resumption; default: --batch-size)")
    index.add_argument("--encoding-dtype", choices=("float16", "float32"), default="float32",
                       help="dtype of the stored video encodings, read when re-ranking (float32: rankings equal "
                            "`tvr eval`'s; float16 halves the disk, rankings may differ on near ties)")
    index.add_argument("--windows", default=None,
                       help="index each video as overlapping windows of these lengths, for `tvr search --moments`: "
                            "seconds (4,8,16) or multiples of the model's clip length (1x,2x)")
    index.add_argument("--stride", type=float, default=0.5,
                       help="with --windows: the step between two windows of one length, a fraction of it (0.5: half "
                            "overlap)")
    index.set_defaults(func=run_index)

    search = subparsers.add_parser(
        "search", help="rank the videos of an index for a text query",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("index_dir", help="folder written by `tvr index`")
    search.add_argument("query", nargs="*", help="query text; several quoted queries are searched one by one")
    search.add_argument("--top-k", type=int, default=10, help="videos shown per query")
    search.add_argument("--rerank-top-k", type=int, default=None,
                        help="videos the model re-scores per query, as `tvr eval --rerank-top-k` (default: the "
                             "model's: EERCF's config value, else max(--top-k, 50)); 0: FAISS's first stage only")
    search.add_argument("--candidates", type=int, default=None,
                        help="videos FAISS proposes per query (default: max(--top-k, --rerank-top-k))")
    search.add_argument("--allow-model-change", action="store_true",
                        help="search although the model folder's weights changed since the index was built")
    search.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    search.add_argument("--json", action="store_true",
                        help="print one JSON list: [{query, results: [{rank, path, score, score_name}]}] (--moments: "
                             "with start, end)")
    search.add_argument("--moments", action="store_true",
                        help="return moments (path, start-end) of an index built with --windows, not whole videos")
    search.add_argument("--nms-iou", type=float, default=0.5,
                        help="with --moments: a window overlapping a better one of its video by this temporal IoU "
                             "or more is dropped")
    search.add_argument("--refine", action="store_true",
                        help="with --moments: move each moment's boundaries to where the model scores the query "
                             "best (decodes the found spans again)")
    search.add_argument("--info", action="store_true",
                        help="show the index (videos, FAISS index type and parameters, measured recall) and exit")
    search.set_defaults(func=run_search)
    return index


def run_index(args: argparse.Namespace) -> int:
    import contextlib
    import os
    import warnings

    if args.remove is not None:
        return run_remove(args)
    if args.video_dir is None or args.index_dir is None:
        raise ValueError("tvr index needs MODEL_DIR VIDEO_DIR INDEX_DIR (or INDEX_DIR --remove ID...)")
    if args.backend == "milvus" and not args.uri and not args.update:
        raise ValueError("--backend milvus needs --uri: a Milvus Lite file (videos.db) or http://host:19530")
    if args.update and args.backend == "milvus":
        raise ValueError("--update keeps the index's own backend: leave out --backend/--uri")
    if args.update and args.windows is not None:
        raise ValueError("--update keeps the windows the index was built with: leave out --windows/--stride")

    import torch
    from accelerate import PartialState

    from ..processing.bad_videos import print_bad_videos
    from ..processing.windows import check_stride, clip_seconds, parse_window_scales
    from ..utils.output_dir import claim_output_dir
    from ..utils.process import exit_with_parent, launched_worker
    from .index import INDEX_FILES, INDEX_KIND, VideoIndex, load_model_and_processor, model_weights_fingerprint
    from .shards import (
        SHARD_PATTERNS,
        SHARDS_KIND,
        encode_shards,
        index_lock,
        prepare_shard_folder,
        remove_shard_folder,
        video_inputs,
    )

    if launched_worker():  # a worker of torchrun / accelerate launch: exit if the launcher dies
        exit_with_parent()
    # one process, or those of `accelerate launch` / `torchrun`: each encodes its share of the shards
    state = PartialState(cpu=args.device == "cpu")
    paths, ids = video_inputs(args.video_dir)
    if args.update:
        if state.num_processes > 1:
            raise ValueError("tvr index --update runs in one process (it encodes only the new and changed videos)")
        return run_update(args, paths, ids, args.device or state.device)
    # checked before anything is encoded: never among the videos, never over files tvr did not write
    inputs = [args.video_dir, *sorted({os.path.dirname(os.path.abspath(path)) for path in paths})]
    claim_output_dir(args.index_dir, INDEX_KIND, inputs=inputs, legacy=INDEX_FILES, what="index folder")
    # shards go to <index_dir>.partial: a killed run, started again (with any number of processes), skips them
    partial = args.index_dir.rstrip("/\\") + ".partial"
    claim_output_dir(partial, SHARDS_KIND, inputs=inputs, legacy=SHARD_PATTERNS, what="resume folder")
    shard_size = args.shard_size or args.batch_size
    with contextlib.ExitStack() as held:
        if state.is_main_process:  # the other processes follow the main one, which fails at once if locked
            held.enter_context(index_lock(args.index_dir))
        weights = model_weights_fingerprint(args.model_dir)
        model, processor = load_model_and_processor(args.model_dir, args.device or state.device, args.processor)
        windows = None
        if args.windows is not None:  # "Nx" needs the processor's clip length
            windows = {"scales": parse_window_scales(args.windows, clip_seconds(processor)),
                       "stride": check_stride(args.stride)}
        if state.is_main_process:
            prepare_shard_folder(partial, model, paths, shard_size, weights, windows=windows)
        state.wait_for_everyone()
        encode_shards(model, processor, paths, partial, shard_size=shard_size, batch_size=args.batch_size,
                      rank=state.process_index, world_size=state.num_processes, on_bad_video=args.on_bad_video,
                      progress=state.is_local_main_process, dtype=getattr(torch, args.encoding_dtype),
                      weights=weights, prepare=False, windows=windows)
        state.wait_for_everyone()
        if not state.is_main_process:
            return 0
        with warnings.catch_warnings():  # the videos that failed are listed below, once
            warnings.filterwarnings("ignore", message=".*could not be decoded", category=UserWarning)
            index = VideoIndex.from_shards(model, processor, paths, partial, index_type=args.index_type,
                                           nlist=args.nlist, model_dir=args.model_dir,
                                           target_recall=args.target_recall, ids=ids,
                                           store=milvus_store(args, args.index_dir, args.model_dir))
        if args.processor is not None:  # saved with the index, so `tvr search` loads the same processor
            index.processor_source = (os.path.abspath(args.processor) if os.path.exists(args.processor)
                                      else os.fspath(args.processor))
        index.save(args.index_dir, inputs=inputs)
        remove_shard_folder(partial)
    windowed = f" as {len(index)} windows" if index.windows is not None else ""
    print(f"indexed {len(set(index.paths)) if windowed else len(index)} videos{windowed} into {args.index_dir}; "
          f"{len(index.failed)} could not be decoded")
    print_bad_videos(index.failed, "not indexed (could not decode)", f"{args.index_dir}/videos.json")
    return 0


def milvus_store(args: argparse.Namespace, index_dir: str, model_dir: str):
    """The (empty) Milvus store of ``--backend milvus --uri URI``, or ``None`` for FAISS."""
    if args.backend != "milvus":
        return None
    from .milvus import MilvusStore

    return MilvusStore.create(args.uri, index_dir, model_dir)


def run_update(args: argparse.Namespace, paths, ids, device) -> int:
    """``tvr index MODEL VIDEOS INDEX --update``."""
    import os

    import torch

    from ..processing.bad_videos import print_bad_videos
    from ..utils.output_dir import claim_output_dir
    from .index import INDEX_FILES, INDEX_KIND, VideoIndex, load_model_and_processor
    from .shards import SHARD_PATTERNS, SHARDS_KIND, index_lock, remove_shard_folder

    inputs = [args.video_dir, *sorted({os.path.dirname(os.path.abspath(path)) for path in paths})]
    claim_output_dir(args.index_dir, INDEX_KIND, inputs=inputs, legacy=INDEX_FILES, what="index folder")
    partial = args.index_dir.rstrip("/\\") + ".partial"
    claim_output_dir(partial, SHARDS_KIND, inputs=inputs, legacy=SHARD_PATTERNS, what="resume folder")
    with index_lock(args.index_dir):
        model, processor = load_model_and_processor(args.model_dir, device, args.processor)
        # the model's weights must be those the index was built with (checked against the index's fingerprint)
        index = VideoIndex.load(args.index_dir, model=model, processor=processor)
        report = index.update(paths, batch_size=args.batch_size, resume_dir=partial, on_bad_video=args.on_bad_video,
                              retrain_drift=args.retrain_drift, shard_size=args.shard_size,
                              dtype=getattr(torch, args.encoding_dtype), ids=ids)
        index.save(args.index_dir, inputs=inputs)
        remove_shard_folder(partial)
    print(f"updated {args.index_dir}: {report.summary()}")
    if report.drift:
        print(report.drift)
    print_bad_videos(report.failed, "not indexed (could not decode)", f"{args.index_dir}/videos.json")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """``tvr index INDEX --remove ID...``."""
    from .index import VideoIndex
    from .shards import index_lock

    index_dir = args.model_dir
    if args.video_dir is not None or args.index_dir is not None:
        raise ValueError("tvr index --remove takes the index folder alone: tvr index INDEX_DIR --remove ID...")
    with index_lock(index_dir):
        index = VideoIndex.load(index_dir, device=args.device or "cpu")
        removed = index.remove(args.remove)
        index.save(index_dir)
    print(f"updated {index_dir}: removed {len(args.remove)} video(s) ({removed} rows), kept {len(index)} rows")
    return 0


def run_search(args: argparse.Namespace) -> int:
    import json

    from .index import SCORE_NAMES, VideoIndex

    if args.info:
        print(format_info(args.index_dir))
        return 0
    if not args.query:
        raise SystemExit("tvr: error: search: give at least one query (or --info)")
    if (args.nms_iou != 0.5 or args.refine) and not args.moments:
        raise ValueError("--nms-iou and --refine go with --moments")
    if args.moments:  # said before the model loads
        from pathlib import Path

        from .index import CONFIG_FILE, _read_index_json
        from .moments import NO_WINDOWS

        config_file = Path(args.index_dir) / CONFIG_FILE
        if config_file.is_file() and not _read_index_json(config_file, f"index {args.index_dir!r}").get("windows"):
            raise ValueError(f"index {args.index_dir!r}: {NO_WINDOWS}")
    index = VideoIndex.load(args.index_dir, device=args.device, allow_model_change=args.allow_model_change)
    score_name = index.score_name(args.rerank_top_k, args.refine)
    if args.moments:
        answers = list(zip(args.query, index.search_moments(args.query, args.top_k, args.nms_iou, args.refine,
                                                            args.rerank_top_k, candidates=args.candidates)))
        if args.json:
            print(json.dumps([{"query": query, "results": [
                {"rank": rank, "path": moment.path, "start": moment.start, "end": moment.end, "score": moment.score,
                 "score_name": score_name, **({"video_id": moment.video_id} if moment.video_id is not None else {})}
                for rank, moment in enumerate(moments, start=1)]} for query, moments in answers], indent=2))
            return 0
        print(f"score: {score_name} ({SCORE_NAMES[score_name]})")
        for query, moments in answers:
            print(format_moments(query, moments))
        return 0
    answers = list(zip(args.query, index.search(args.query, args.top_k, args.rerank_top_k,
                                                candidates=args.candidates)))
    if args.json:
        print(json.dumps([{"query": query,
                           "results": [{"rank": rank, "path": path, "score": value, "score_name": score_name}
                                       for rank, (path, value) in enumerate(results, start=1)]}
                          for query, results in answers], indent=2))
        return 0
    print(f"score: {score_name} ({SCORE_NAMES[score_name]})")
    for query, results in answers:
        print(format_results(query, results))
    return 0


def format_results(query: str, results) -> str:
    """``query`` and its ranked ``(path, score)`` results as printed by ``tvr search``."""
    lines = [f"query: {query}"]
    lines += [f"{rank:>4}. {score:9.4f}  {path}" for rank, (path, score) in enumerate(results, start=1)]
    return "\n".join(lines)


def format_moments(query: str, moments) -> str:
    """``query`` and its ranked moments as printed by ``tvr search --moments``: ``rank. score path start-end``."""
    lines = [f"query: {query}"]
    lines += [f"{rank:>4}. {moment.score:9.4f}  {moment.path}  {moment.start:.2f}-{moment.end:.2f}"
              for rank, moment in enumerate(moments, start=1)]
    return "\n".join(lines)


def format_info(index_dir: str) -> str:
    """What ``tvr search --info`` prints: the index's size, model and FAISS index (type, parameters, recall)."""
    from pathlib import Path

    from .index import CONFIG_FILE, _read_index_json

    config = _read_index_json(Path(index_dir) / CONFIG_FILE, f"index {index_dir!r}")
    store = config.get("store") or {"backend": "faiss",
                                    **(config.get("faiss") or {key: config[key] for key in ("index_type", "nlist",
                                                                                             "nprobe")})}
    lines = [f"index: {index_dir}", f"videos: {config['num_videos']} ({config['num_failed']} could not be decoded)",
             f"model: {config['model_dir']}", f"dim: {config['dim']}",
             f"ids: int64 row ids, next id {config.get('next_id', config['num_videos'])}",
             f"segments: {len(config.get('segments') or [None])} encoding file(s)"]
    lines += [f"{key}: {value}" for key, value in store.items() if key not in ("files", "pending_removals")]
    if store.get("pending_removals"):
        lines.append(f"pending_removals: {len(store['pending_removals'])} ids (deleted from the collection at the "
                     "next save)")
    if config.get("windows"):
        windows = config["windows"]
        lines.append(f"windows: {', '.join(f'{scale:g}' for scale in windows['scales'])} s, stride "
                     f"{windows['stride']:g} (rows are windows: `tvr search --moments`)")
    return "\n".join(lines)
