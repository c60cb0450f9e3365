"""``pipeline("video-text-retrieval")``: rank videos for captions (t2v), captions for videos (v2t), or search a
``tvr index`` folder."""

from __future__ import annotations

import os
from typing import Any

from .base import VideoTextPipeline, as_text_list, as_video_list, check_top_k, ranked, video_name

DEFAULT_INDEX_TOP_K = 10


class VideoTextRetrievalPipeline(VideoTextPipeline):
    """Text-to-video and video-to-text retrieval with any tvr model.

    Example:

    ```python
    >>> import tvr  # registers the pipelines
    >>> from transformers import pipeline
    >>> retriever = pipeline("video-text-retrieval", model="runs/clip4clip/best")  # doctest: +SKIP
    >>> retriever("a dog runs on the beach", videos=["beach.mp4", "kitchen.mp4"])  # doctest: +SKIP
    [{'video': 'beach.mp4', 'score': 31.2, 'index': 0}, {'video': 'kitchen.mp4', 'score': 12.9, 'index': 1}]
    >>> retriever(["a dog runs", "a man cooks"], videos=paths, top_k=3)  # one ranking per caption  # doctest: +SKIP
    >>> retriever("a dog runs", index="my_videos.index", top_k=10)  # a `tvr index` folder  # doctest: +SKIP
    >>> retriever("a dog runs", index="lectures.index", moments=True)  # built with --windows  # doctest: +SKIP
    [{'video': 'lecture3.mp4', 'start': 40.0, 'end': 48.0, 'score': 27.5, 'score_name': 'similarity'}, ...]
    >>> retriever(videos=["beach.mp4"], texts=["a dog runs", "a man cooks"])  # captions for a video  # doctest: +SKIP
    ```

    Scores are the model's logits from ``model.score_gallery`` over the whole list given (the method's own gallery
    scoring), so rankings are those ``tvr eval`` would make. Each call decodes every video once, ``batch_size`` at
    a time (a progress bar shows for long lists).
    """

    def __call__(self, text: str | list[str] | None = None, videos: Any = None, texts: list[str] | None = None,
                 index: Any = None, **kwargs):
        """Rank videos for ``text`` (given ``videos`` or an ``index``), or ``texts`` for ``videos``.

        Args:
            text: one caption or a list (t2v).
            videos: one video or a list (a path, bytes or a ``(frames, height, width, 3)`` uint8 array each): the
                gallery for ``text``, or the videos to caption from ``texts``.
            texts: candidate captions (v2t, with ``videos``).
            index: a folder written by ``tvr index`` (or a ``tvr.retrieval.VideoIndex``) to search with ``text``;
                it must have been built with this pipeline's model.
            top_k: results per query (default all; 10 for an index).
            rerank_top_k: index search only: videos the model's ``score_gallery`` re-scores per query, as in
                ``tvr search`` and ``tvr eval`` (default the model's: EERCF's ``config.rerank_top_k``, else
                ``max(top_k, 50)``); ``0``: FAISS's first stage alone (inner products of the embeddings).
            batch_size: videos / captions per forward pass.
            progress: show a progress bar while decoding (default: for more than 32 videos).
            moments: index search only: return moments (``start`` / ``end`` in seconds) of an index built with
                windows, as ``tvr search --moments`` (:meth:`tvr.retrieval.VideoIndex.search_moments`).
            nms_iou, refine: with ``moments``: the temporal NMS threshold within a video (default 0.5), and whether
                to refine the boundaries (default no).

        Returns:
            t2v / index: for one caption, a list of ``{"video", "score", "index"}`` best first (``video`` is the
            path, or the position in ``videos`` for non-path inputs; ``index`` the position in ``videos`` or the
            index row; index results add ``score_name``, as ``tvr search --json``; moments are
            ``{"video", "start", "end", "score", "score_name"}``, plus ``video_id`` when the index has ids); for a
            list of captions, one such list each. v2t: for one video, a list of
            ``{"text", "score", "index"}`` best first; for a list of videos, one list each.
        """
        if text is not None and texts is not None:
            raise ValueError("give text= (captions to rank videos for) or texts= (captions to rank for videos), not "
                             "both")
        if text is not None:
            if (videos is None) == (index is None):
                raise ValueError("text-to-video retrieval needs exactly one gallery: videos=[...] or index=INDEX_DIR")
            queries, single = as_text_list(text, "text")
            if index is not None:
                inputs = {"mode": "index", "texts": queries, "single": single, "index": index}
            else:
                gallery, _ = as_video_list(videos)
                inputs = {"mode": "t2v", "texts": queries, "single": single, "videos": gallery}
        elif texts is not None:
            if videos is None or index is not None:
                raise ValueError("video-to-text retrieval ranks texts=[...] for videos=[...] (no index)")
            captions, _ = as_text_list(texts, "texts")
            gallery, single = as_video_list(videos)
            inputs = {"mode": "v2t", "texts": captions, "single": single, "videos": gallery}
        else:
            raise ValueError("give text= with videos= or index= (text-to-video), or videos= with texts= "
                             "(video-to-text)")
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, top_k: int | None = None, rerank_top_k: int | None = None,
                             progress: bool | None = None, moments: bool | None = None, nms_iou: float | None = None,
                             refine: bool | None = None, **kwargs):
        if kwargs:
            raise TypeError(f"video-text-retrieval got unexpected arguments {sorted(kwargs)}")
        preprocess, forward, postprocess = {}, {}, {}
        if (nms_iou is not None or refine) and not moments:
            raise ValueError("nms_iou= and refine= go with moments=True (an index search)")
        if moments:
            forward["moments"] = {"nms_iou": 0.5 if nms_iou is None else nms_iou, "refine": bool(refine)}
        if progress is not None:
            preprocess["progress"] = progress
        if top_k is not None:
            postprocess["top_k"] = forward["top_k"] = check_top_k(top_k)
        if rerank_top_k is not None:
            forward["rerank_top_k"] = rerank_top_k
        return preprocess, forward, postprocess

    def preprocess(self, inputs: dict, batch_size: int, progress: bool | None = None) -> dict:
        if inputs["mode"] == "index":
            return {**inputs, "batch_size": batch_size}
        return {**inputs, "text_batches": self.text_batches(inputs["texts"], batch_size),
                "video_batches": self.video_batches(inputs["videos"], batch_size, progress)}

    def _forward(self, model_inputs: dict, top_k: int | None = None, rerank_top_k: int | None = None,
                 moments: dict | None = None) -> dict:
        if moments is not None and model_inputs["mode"] != "index":
            raise ValueError("moments=True searches an index built with windows: give index=INDEX_DIR")
        if model_inputs["mode"] == "index":
            index = self.load_index(model_inputs["index"])
            top_k = top_k or DEFAULT_INDEX_TOP_K
            if moments is not None:
                found = index.search_moments(model_inputs["texts"], top_k=top_k, rerank_top_k=rerank_top_k,
                                             batch_size=model_inputs["batch_size"], **moments)
                # plain tuples: the base pipeline rebuilds the named tuples it passes on as tuples
                return {**model_inputs, "mode": "moments", "results": [[tuple(m) for m in ms] for ms in found],
                        "score_name": index.score_name(rerank_top_k, moments["refine"])}
            results = index.search(model_inputs["texts"], top_k=top_k, rerank_top_k=rerank_top_k,
                                   batch_size=model_inputs["batch_size"])
            rows = {path: row for row, path in enumerate(index.paths)}
            return {**model_inputs, "score_name": index.score_name(rerank_top_k),
                    "results": [[(path, score, rows[path]) for path, score in ranking] for ranking in results]}
        scores = self.score(model_inputs["text_batches"], model_inputs["video_batches"])
        return {**model_inputs, "scores": scores}

    def postprocess(self, model_outputs: dict, top_k: int | None = None):
        mode = model_outputs["mode"]
        if mode == "moments":
            rankings = [[{"video": path, "start": start, "end": end, "score": score,
                          "score_name": model_outputs["score_name"], **({"video_id": video_id} if video_id else {})}
                         for path, start, end, score, video_id in moments] for moments in model_outputs["results"]]
        elif mode == "index":
            rankings = [[{"video": path, "score": float(score), "index": row,
                          "score_name": model_outputs["score_name"]} for path, score, row in results]
                        for results in model_outputs["results"]]
        elif mode == "t2v":
            videos = model_outputs["videos"]
            rankings = [[{"video": video_name(videos[i], i), "score": float(row[i]), "index": i}
                         for i in ranked(row, top_k)] for row in model_outputs["scores"].tolist()]
        else:
            texts = model_outputs["texts"]
            rankings = [[{"text": texts[j], "score": float(column[j]), "index": j} for j in ranked(column, top_k)]
                        for column in model_outputs["scores"].t().tolist()]
        return rankings[0] if model_outputs["single"] else rankings

    def load_index(self, index: Any):
        """A ``VideoIndex`` from a folder (loaded once per pipeline, with this pipeline's model and processor)."""
        from ..retrieval import VideoIndex

        if isinstance(index, VideoIndex):
            return index
        key = os.path.abspath(os.fspath(index))
        cache = self.__dict__.setdefault("_indexes", {})
        if key not in cache:
            # VideoIndex.load checks the model: its weights (fingerprint) and embedding width
            cache[key] = VideoIndex.load(key, model=self.model, processor=self.processor)
        return cache[key]
