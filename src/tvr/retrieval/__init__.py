"""Search a video collection with text: a FAISS index of a tvr model's video embeddings, re-ranked by the model's
own gallery scoring where asked (``tvr index`` / ``tvr search`` on the command line; ``accelerate launch -m
tvr.retrieval index ...`` to encode with several processes)."""

from .faiss_index import INDEX_TYPES, build_faiss_index
from .index import SearchResult, VideoIndex, default_nlist, list_video_files, load_model_and_processor
from .shards import encode_shards, read_shards

__all__ = ["INDEX_TYPES", "SearchResult", "VideoIndex", "build_faiss_index", "default_nlist", "encode_shards",
           "list_video_files", "load_model_and_processor", "read_shards"]
