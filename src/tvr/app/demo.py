"""What the app does, without the UI: :class:`RetrievalDemo` loads a model once, keeps a video index in memory and
answers the app's two questions through tvr's pipelines. Every answer is text a person can read, bad inputs
included, so the UI (:mod:`tvr.app.ui`) only lays it out."""

from __future__ import annotations

import html
import os
import urllib.parse
from pathlib import Path
from typing import Any

DEFAULT_TOP_K = 5
DEFAULT_LABELS = "red, green, blue, yellow, white"
DEFAULT_TEMPLATE = "a video of {}."  # the pipeline's default, the "single" template set
MAX_CAPTIONS_SHOWN = 5


class RetrievalDemo:
    """A tvr model behind the app: text search over a video collection, and zero-shot labels and the best captions
    for an uploaded video.

    Args:
        model: a folder saved with ``save_pretrained`` (model + processor) or a Hub id.
        index: a folder written by ``tvr index`` (built with this model) to search.
        videos: a folder of videos to index in memory at start (when no ``index`` is given).
        device: e.g. ``"cpu"``, ``"cuda"`` (default: CUDA when available).
        batch_size: videos per forward pass when indexing and labelling.

    Example::

        demo = RetrievalDemo("runs/clip4clip/best", videos="my_videos/")
        gallery, table = demo.search("a dog runs", top_k=3)
    """

    def __init__(self, model: str | os.PathLike, index: str | os.PathLike | None = None,
                 videos: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 8):
        import torch
        from transformers import pipeline

        from ..pipelines import ZeroShotVideoClassificationPipeline  # importing it registers both pipelines
        from ..retrieval import VideoIndex

        if index is not None and videos is not None:
            raise ValueError("give an index (--index) or a video folder to index (--videos), not both")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model_name = os.fspath(model)
        self.retriever = pipeline("video-text-retrieval", model=self.model_name, device=device, batch_size=batch_size)
        self.classifier = ZeroShotVideoClassificationPipeline(
            model=self.retriever.model, processor=self.retriever.processor, device=self.retriever.device,
            batch_size=batch_size, task="zero-shot-video-classification")
        if index is not None:
            self.index = self.retriever.load_index(index)
        elif videos is not None:
            self.index = VideoIndex.build(self.retriever.model, self.retriever.processor, videos,
                                          batch_size=batch_size, model_dir=None)
        else:
            self.index = None

    @property
    def video_folders(self) -> list[str]:
        """Folders holding the indexed videos (the app may serve files from these)."""
        if self.index is None:
            return []
        return sorted({os.path.dirname(os.path.abspath(path)) for path in self.index.paths})

    def describe(self) -> str:
        model = self.retriever.model
        gallery = f"{len(self.index)} videos indexed" if self.index is not None else "no videos indexed"
        if self.index is not None and self.index.windows is not None:
            gallery = (f"{len(set(self.index.paths))} videos indexed as {len(self.index)} windows: results are "
                       "moments, a click plays one from its start")
        return (f"**{type(model).__name__}** (`{model.config.model_type}`) from `{self.model_name}`, on "
                f"{self.retriever.device}; {gallery}.")

    def search(self, query: str, top_k: int = DEFAULT_TOP_K) -> tuple[list[tuple[str, str]], str]:
        """The ``top_k`` videos for ``query`` (moments, in an index built with windows): ``(gallery items (path,
        caption), a Markdown table)``."""
        gallery, table, _ = self.search_results(query, top_k)
        return gallery, table

    def search_results(self, query: str, top_k: int = DEFAULT_TOP_K
                       ) -> tuple[list[tuple[str, str]], str, list[tuple[str, float | None, float | None]]]:
        """:meth:`search`'s answer and, per result, ``(path, start, end)`` to play it from (:meth:`player`; start
        and end are ``None`` for whole videos). An index built with windows answers with moments (the
        ``video-text-retrieval`` pipeline's ``moments=True``, as ``tvr search --moments``)."""
        query = (query or "").strip()
        if self.index is None:
            return [], "No videos to search: start the app with `--index INDEX_DIR` or `--videos DIR`.", []
        if not query:
            return [], "Type what happens in the video you are looking for.", []
        moments = self.index.windows is not None
        results = self.retriever(query, index=self.index, top_k=int(top_k), **({"moments": True} if moments else {}))
        spans = [(result["video"], result.get("start"), result.get("end")) for result in results]
        when = [f" {_span(start, end)}" if moments else "" for _, start, end in spans]
        gallery = [(result["video"], f"{rank}. {Path(result['video']).name}{at} ({result['score']:.3f})")
                   for rank, (result, at) in enumerate(zip(results, when), start=1)]
        rows = [f"| {rank} | {_cell(Path(result['video']).name)} |{at} | {result['score']:.3f} |" if moments else
                f"| {rank} | {_cell(Path(result['video']).name)} | {result['score']:.3f} |"
                for rank, (result, at) in enumerate(zip(results, when), start=1)]
        score = results[0]["score_name"] if results else "score"  # what `tvr search` shows for the same query
        columns = "| rank | video | moment (s) | {} |\n|---|---|---|---|" if moments else "| rank | video | {} |\n|---|---|---|"
        header = f"Top {len(results)} for *{_cell(query)}*\n\n{columns.format(score)}\n"
        table = header + "\n".join(rows)
        return gallery, table, spans

    def player(self, path: str, start: float | None = None, end: float | None = None) -> str:
        """HTML of a player for an indexed video that starts at ``start`` and stops at ``end`` (a media fragment,
        ``#t=start,end``, which the browser seeks to); empty for a file the index does not hold (never served)."""
        if self.index is None or path not in set(self.index.paths):
            return ""
        fragment = f"#t={start:g},{end:g}" if start is not None and end is not None else ""
        # relative to the page, so it also works under a root path (a Space); the video's folder is an allowed path
        source = f"gradio_api/file={urllib.parse.quote(os.path.abspath(path))}{fragment}"
        caption = f"{Path(path).name} {_span(start, end)}" if start is not None else Path(path).name
        return (f'<video src="{html.escape(source)}" controls autoplay muted playsinline style="width: 100%; max-width: 640px" '
                f'data-start="{start if start is not None else 0:g}"></video><p>{html.escape(caption)}</p>')

    def analyse(self, video: Any, labels: str = DEFAULT_LABELS, captions: str = "",
                template: str = DEFAULT_TEMPLATE) -> tuple[dict[str, float], str]:
        """Zero-shot labels for an uploaded video (comma-separated ``labels``) and its best captions among
        ``captions`` (one per line): ``({label: probability}, Markdown)``; a video that cannot be read gives no labels
        and a message saying why. ``template`` is one template with ``{}`` or a template set's name (``clip-kinetics``:
        its prompts averaged per label, as ``tvr eval --task zero-shot-classification`` does)."""
        if video is None:
            return {}, "Upload a video first."
        label_list = [label.strip() for label in (labels or "").split(",") if label.strip()]
        caption_list = [line.strip() for line in (captions or "").splitlines() if line.strip()]
        if not label_list and not caption_list:
            return {}, "Give some labels (comma-separated) or captions (one per line)."
        name = Path(os.fspath(video)).name
        try:  # a bad template is the user's text, not the video's fault: said before the video is read
            templates = label_templates(template)
        except ValueError as error:
            return {}, _cell(str(error))
        try:
            scores = {}
            if label_list:
                results = self.classifier(os.fspath(video), candidate_labels=label_list, templates=templates)
                scores = {result["label"]: result["score"] for result in results}
            message = f"**{_cell(name)}**"
            if caption_list:
                ranked = self.retriever(videos=os.fspath(video), texts=caption_list)[:MAX_CAPTIONS_SHOWN]
                rows = [f"| {rank} | {_cell(result['text'])} | {result['score']:.3f} |"
                        for rank, result in enumerate(ranked, start=1)]
                message += "\n\nBest captions\n\n| rank | caption | score |\n|---|---|---|\n" + "\n".join(rows)
            return scores, message
        except Exception as error:  # noqa: BLE001  (any decoding error: the app answers with it and keeps running)
            reason = str(error).replace(os.fspath(video), name)
            return {}, f"Could not read the uploaded file **{_cell(name)}** as a video: {_cell(reason)}"


def label_templates(template: str | None) -> list[str]:
    """The templates of the app's template box: a template set's name (:data:`tvr.evaluation.templates.TEMPLATE_SETS`)
    or one template with ``{}`` (empty: the labels as they are)."""
    from ..evaluation.templates import TEMPLATE_SETS, resolve_templates
    from ..pipelines.zero_shot_video_classification import check_hypothesis_template

    template = template or "{}"
    if template.strip() in TEMPLATE_SETS:
        return resolve_templates(template.strip())
    return [check_hypothesis_template(template)]


def _span(start: float, end: float) -> str:
    return f"{start:.2f}-{end:.2f} s"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")
