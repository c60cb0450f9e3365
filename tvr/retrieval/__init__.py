"""Search a video collection with text: a FAISS index of a tvr model's video embeddings, re-ranked by the model's
own ``similarity`` where asked (``tvr index`` / ``tvr search`` on the command line)."""

from .index import SearchResult, VideoIndex, default_nlist, list_video_files, load_model_and_processor

__all__ = ["SearchResult", "VideoIndex", "default_nlist", "list_video_files", "load_model_and_processor"]
