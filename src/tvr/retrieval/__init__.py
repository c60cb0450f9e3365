"""Search a video collection with text: a FAISS (or Milvus) index of a tvr model's video embeddings, updated in
place, re-ranked by the model's own gallery scoring where asked (``tvr index`` / ``tvr search`` on the command line;
``accelerate launch -m tvr.retrieval index ...`` to encode with several processes)."""

from .._lazy import lazy_names

# module -> the names it gives the package, each loaded on first use (`tvr index --help` imports no torch)
EXPORTS = {
    "faiss_index": ("INDEX_TYPES", "build_faiss_index", "default_nlist"),
    "index": ("SearchResult", "VideoIndex", "load_model_and_processor"),
    "milvus": ("MilvusStore",),
    "moments": ("Moment",),
    "shards": ("encode_shards", "list_video_files", "read_shards"),
    "stores": ("FaissStore", "VectorStore"),
    "updates": ("UpdateReport",),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names})
