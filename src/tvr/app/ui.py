"""The Gradio UI of ``tvr app`` (and of a ``tvr space`` Space): a search tab and an upload tab around a
:class:`~tvr.app.demo.RetrievalDemo`. Imports gradio, the optional extra ``app``."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # never phone home

import gradio as gr  # noqa: E402

from ..evaluation.templates import TEMPLATE_SETS  # noqa: E402
from .demo import DEFAULT_LABELS, DEFAULT_TEMPLATE, DEFAULT_TOP_K, RetrievalDemo  # noqa: E402

# system fonts: the page loads nothing from outside the server
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def build_ui(demo: RetrievalDemo) -> gr.Blocks:
    """The app's page: ``Search`` (query -> playable top videos with scores; a clicked result plays in the player
    below, from its moment's start in an index built with windows) and ``Upload a video`` (zero-shot labels and best
    captions)."""
    with gr.Blocks(title="tvr: text-to-video retrieval") as page:
        gr.Markdown("# tvr: text-to-video retrieval\n\n" + demo.describe())
        with gr.Tab("Search"):
            with gr.Row():
                query = gr.Textbox(label="Query", placeholder="a red square moves left", scale=4, elem_id="query")
                top_k = gr.Slider(1, 20, value=DEFAULT_TOP_K, step=1, label="Videos", scale=1)
            search = gr.Button("Search", variant="primary", elem_id="search-button")
            table = gr.Markdown(elem_id="search-results")
            moments = demo.index is not None and demo.index.windows is not None
            # moments: a click plays the moment in the player below (the gallery's own preview starts at 0)
            gallery = gr.Gallery(label="Top moments" if moments else "Top videos", columns=5, height="auto",
                                 elem_id="search-gallery", allow_preview=not moments)
            player = gr.HTML(elem_id="moment-player")  # a clicked result, playing from its moment's start
            spans = gr.State([])  # this session's results: (path, start, end) each
            search.click(demo.search_results, [query, top_k], [gallery, table, spans], api_name="search")
            query.submit(demo.search_results, [query, top_k], [gallery, table, spans])

            def play(results: list, selected: gr.SelectData) -> str:
                return demo.player(*results[selected.index]) if 0 <= selected.index < len(results) else ""

            gallery.select(play, [spans], player)
        with gr.Tab("Upload a video"):
            with gr.Row():
                video = gr.Video(label="Video", sources=["upload"], include_audio=True, elem_id="upload-video")
                with gr.Column():
                    labels = gr.Textbox(label="Labels (comma-separated)", value=DEFAULT_LABELS, elem_id="labels")
                    template = gr.Textbox(label="Template (one with {}, or a set: " + ", ".join(TEMPLATE_SETS) + ")",
                                          value=DEFAULT_TEMPLATE)
                    captions = gr.Textbox(label="Captions (one per line)", lines=4, elem_id="captions")
            analyse = gr.Button("Analyse", variant="primary", elem_id="analyse-button")
            label_output = gr.Label(label="Zero-shot labels", elem_id="labels-output")
            message = gr.Markdown(elem_id="analysis")
            analyse.click(demo.analyse, [video, labels, captions, template], [label_output, message],
                          api_name="analyse")
    return page


def launch(demo: RetrievalDemo, host: str | None = None, port: int | None = None, **launch_kwargs):
    """Serve the app (blocking). ``host`` / ``port`` default to Gradio's (``GRADIO_SERVER_NAME`` /
    ``GRADIO_SERVER_PORT``, else 127.0.0.1:7860); the indexed videos' folders are the only files served besides
    uploads."""
    page = build_ui(demo)
    page.queue().launch(server_name=host, server_port=port, allowed_paths=demo.video_folders, theme=THEME,
                        show_error=True, **launch_kwargs)
    return page
