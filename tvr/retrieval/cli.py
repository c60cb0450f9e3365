"""``tvr index`` and ``tvr search``: index a folder of videos with a saved model, then search it with text.

Example::

    tvr index runs/clip4clip/best my_videos/ my_videos.index --batch-size 32   # killed? run it again: it resumes
    tvr search my_videos.index "a man is playing a guitar" --top-k 5
    tvr search my_videos.index "a man is playing a guitar" --top-k 5 --rerank-top-k 50   # model's own scores
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    index = subparsers.add_parser(
        "index", help="encode a folder of videos with a saved model into a searchable index",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument("model_dir", help="folder saved with save_pretrained (model + processor)")
    index.add_argument("video_dir", help="folder of videos (searched recursively)")
    index.add_argument("index_dir", help="folder to write the index into")
    index.add_argument("--processor", default=None,
                       help="processor folder, or the model's tokenizer (folder or Hub id), for a model folder without "
                            "one (saved with the index)")
    index.add_argument("--batch-size", type=int, default=16, help="videos per forward pass")
    index.add_argument("--index-type", choices=("flat", "ivf"), default="flat",
                       help="flat: exact inner product; ivf: inverted lists for large collections")
    index.add_argument("--nlist", type=int, default=None, help="IVF cells (default 4 * sqrt(number of videos))")
    index.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    index.add_argument("--on-bad-video", choices=("skip", "error"), default="skip",
                       help="a video that cannot be decoded: skip it (listed in the output) or stop with an error")
    index.set_defaults(func=run_index)

    search = subparsers.add_parser(
        "search", help="rank the videos of an index for a text query",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("index_dir", help="folder written by `tvr index`")
    search.add_argument("query", nargs="+", help="query text; several quoted queries are searched one by one")
    search.add_argument("--top-k", type=int, default=10, help="videos shown per query")
    search.add_argument("--rerank-top-k", type=int, default=None,
                        help="re-rank this many index candidates with the model's own similarity")
    search.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    search.add_argument("--json", action="store_true",
                        help="print one JSON list: [{query, score, results: [{rank, path, score}]}]")
    search.set_defaults(func=run_search)
    return index


def run_index(args: argparse.Namespace) -> int:
    import shutil

    from .index import VideoIndex

    # encodings in progress go to <index_dir>.partial: a killed run, started again, skips the videos already done
    partial = args.index_dir.rstrip("/\\") + ".partial"
    index = VideoIndex.from_model_dir(args.model_dir, args.video_dir, device=args.device,
                                      batch_size=args.batch_size, index_type=args.index_type, nlist=args.nlist,
                                      on_bad_video=args.on_bad_video, resume_dir=partial, processor=args.processor)
    index.save(args.index_dir)
    shutil.rmtree(partial, ignore_errors=True)
    print(f"indexed {len(index)} videos into {args.index_dir}; {len(index.failed)} could not be decoded")
    for path, error in index.failed.items():
        print(f"not indexed (could not decode): {path}: {error}")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from .index import VideoIndex

    import json

    index = VideoIndex.load(args.index_dir, device=args.device)
    score = score_name(args.rerank_top_k)
    answers = list(zip(args.query, index.search(args.query, args.top_k, args.rerank_top_k)))
    if args.json:
        print(json.dumps([{"query": query, "score": score,
                           "results": [{"rank": rank, "path": path, "score": value}
                                       for rank, (path, value) in enumerate(results, start=1)]}
                          for query, results in answers], indent=2))
        return 0
    print(f"score: {score}")
    for query, results in answers:
        print(format_results(query, results))
    return 0


def score_name(rerank_top_k: int | None) -> str:
    """What ``tvr search`` scores are: the index's cosine, or (re-ranked) the model's own similarity logits."""
    if rerank_top_k:
        return f"the model's similarity (logits, its own scale) over the index's top {rerank_top_k}"
    return "cosine similarity of the normalised embeddings (get_text_embeds . get_video_embeds)"


def format_results(query: str, results) -> str:
    """``query`` and its ranked ``(path, score)`` results as printed by ``tvr search``."""
    lines = [f"query: {query}"]
    lines += [f"{rank:>4}. {score:9.4f}  {path}" for rank, (path, score) in enumerate(results, start=1)]
    return "\n".join(lines)
