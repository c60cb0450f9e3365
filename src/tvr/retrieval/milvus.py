"""The Milvus backend of :class:`~tvr.retrieval.VideoIndex` (``tvr index ... --backend milvus --uri URI``).

The vectors, their row ids and each row's metadata (path, dataset ``video_id``, ``start`` / ``end`` in seconds, -1
for a whole video) live in a Milvus collection: Milvus Lite, embedded, when ``URI`` is a local file
(``videos.db``: tests and small installs), or a Milvus server or cluster (``http://host:19530``). The collection
records the model's folder (property ``tvr.model``). The index folder still holds tvr's config (with the URI and the
collection's name), the row table and the full encodings, which re-ranking reads; ``tvr search``,
``VideoIndex.load``, the pipeline and the app open such an index unchanged.

Updates keep a reader on the old or the new version: new rows are upserted before the folder is swapped (an old
reader does not know their ids and drops them), removed rows are deleted from the collection only once the new
folder is in place (:meth:`MilvusStore.committed`; a kill before that leaves ids no row table knows, dropped by
search and deleted by the next save). Needs ``pip install tvr[milvus]`` (``pymilvus``, ``milvus-lite``).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .stores import Gather, as_ids, as_vectors

BATCH = 5_000  # rows per insert call (a gRPC message stays well under its size limit at 512-d)
_CLIENTS: dict[str, Any] = {}  # one client per URI and process (Milvus Lite serves one file per process)


def _client(uri: str):
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ValueError("the Milvus backend needs pymilvus and milvus-lite: pip install 'tvr[milvus]'") from None
    from pymilvus.exceptions import MilvusException

    if uri not in _CLIENTS:
        try:
            _CLIENTS[uri] = MilvusClient(uri)
        except MilvusException as error:
            lite = "" if _is_server(uri) else (" (Milvus Lite serves a file to one process at a time: close the other "
                                                 "one, or use a Milvus server, --uri http://host:19530)")
            raise ValueError(f"cannot open Milvus at {uri!r}: {error.message}{lite}") from None
    return _CLIENTS[uri]


def close(uri: str) -> None:
    """Close this process's client of ``uri`` (and stop the embedded Milvus Lite server of a file, so that another
    process can open it)."""
    client = _CLIENTS.pop(resolve_uri(uri), None)
    if client is not None:
        client.close()
    if not _is_server(uri):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(resolve_uri(uri))


def _is_server(uri: str) -> bool:
    return bool(re.match(r"^[a-z]+://", uri))


def resolve_uri(uri: str) -> str:
    """A server URI as given; a Milvus Lite file as an absolute path (the index is searched from anywhere)."""
    return uri if _is_server(uri) else os.path.abspath(uri)


def collection_name(index_dir: str | os.PathLike) -> str:
    """``tvr_<folder name>_<hash of its absolute path>`` (Milvus names: letters, digits, underscores)."""
    path = os.path.abspath(index_dir)
    readable = re.sub(r"\W", "_", os.path.basename(path.rstrip(os.sep)))[:40]
    return f"tvr_{readable}_{hashlib.sha256(path.encode()).hexdigest()[:8]}"


class MilvusStore:
    """A Milvus collection of the index's vectors by row id (inner product; exact ``FLAT`` on Milvus Lite,
    ``AUTOINDEX`` on a server). Create one with :meth:`create`; reopen it with :meth:`load`."""

    backend = "milvus"

    def __init__(self, info: Mapping[str, Any], gather: Gather | None = None):
        self.info = {"backend": self.backend, **info}
        self.gather = gather  # unused: Milvus scores its own vectors; kept for the VectorStore contract
        self.pending: list[int] = [int(i) for i in self.info.pop("pending_removals", [])]
        self.client = _client(self.info["uri"])

    @classmethod
    def create(cls, uri: str, index_dir: str | os.PathLike, model_dir: str | os.PathLike | None = None
               ) -> "MilvusStore":
        """An empty store for ``index_dir`` at ``uri``: the collection is made on the first :meth:`add` (a
        collection of an earlier build of the same folder is replaced then)."""
        uri = resolve_uri(uri)
        return cls({"uri": uri, "collection": collection_name(index_dir),
                    "index_type": "AUTOINDEX" if _is_server(uri) else "FLAT",
                    "metric": "IP", "model": os.path.abspath(model_dir) if model_dir else None, "nlist": None,
                    "nprobe": None, "dim": None, "created": False})

    @property
    def dim(self) -> int:
        return int(self.info["dim"])

    @property
    def name(self) -> str:
        return self.info["collection"]

    def __len__(self) -> int:
        if not self.info.get("created"):
            return 0
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def __repr__(self) -> str:
        return f"MilvusStore({self.name!r} at {self.info['uri']!r})"

    def _create_collection(self, dim: int) -> None:
        from pymilvus import DataType, MilvusClient

        if self.client.has_collection(self.name):
            self.client.drop_collection(self.name)
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("path", DataType.VARCHAR, max_length=4096)
        schema.add_field("video_id", DataType.VARCHAR, max_length=1024)
        schema.add_field("start", DataType.FLOAT)
        schema.add_field("end", DataType.FLOAT)
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name="vector", index_type=self.info["index_type"], metric_type="IP")
        self.client.create_collection(self.name, schema=schema, index_params=index_params, consistency_level="Strong",
                                      properties={"tvr.model": self.info.get("model") or ""})
        self.info.update(dim=dim, created=True)

    def add(self, ids, vectors, metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        ids, vectors = as_ids(ids), as_vectors(vectors)
        if not len(ids):
            return
        if not self.info.get("created"):
            self._create_collection(vectors.shape[1])
        metadata = metadata or [{}] * len(ids)
        for begin in range(0, len(ids), BATCH):
            rows = [{"id": int(row_id), "vector": vector.tolist(), "path": str(meta.get("path", "")),
                     "video_id": str(meta.get("video_id", "")), "start": float(meta.get("start", -1.0)),
                     "end": float(meta.get("end", -1.0))}
                    for row_id, vector, meta in zip(ids[begin:begin + BATCH], vectors[begin:begin + BATCH],
                                                    metadata[begin:begin + BATCH])]
            self.client.upsert(self.name, rows)  # an update killed and run again writes the same ids again

    def remove(self, ids) -> int:
        """Mark ``ids`` removed; the collection deletes them once the folder that no longer has them is in place
        (:meth:`committed`)."""
        ids = as_ids(ids)
        self.pending += ids.tolist()
        return len(ids)

    def committed(self) -> None:
        """The folder without the removed rows is in place: delete them from the collection."""
        if self.pending:
            for begin in range(0, len(self.pending), BATCH):
                self.client.delete(self.name, ids=self.pending[begin:begin + BATCH])
            self.pending = []

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = as_vectors(queries)
        pending = set(self.pending)
        hits = self.client.search(self.name, data=queries.tolist(), limit=k + len(pending),
                                  search_params={"metric_type": "IP"}, output_fields=[])
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for query, found in enumerate(hits):
            found = [hit for hit in found if hit["id"] not in pending][:k]
            ids[query, :len(found)] = [hit["id"] for hit in found]
            scores[query, :len(found)] = [hit["distance"] for hit in found]
        return scores, ids

    def save(self, folder: Path) -> dict[str, Any]:
        return {**self.info, "pending_removals": list(self.pending)}

    @classmethod
    def load(cls, folder: Path, entry: Mapping[str, Any], gather: Gather | None = None) -> "MilvusStore":
        store = cls(entry, gather)
        if not store.client.has_collection(store.name):
            raise ValueError(f"index {os.fspath(folder)!r}: its Milvus collection {store.name!r} is missing at "
                             f"{store.info['uri']!r}; rebuild the index with `tvr index ... --backend milvus`")
        store.client.load_collection(store.name)  # a collection another process wrote starts released
        return store


__all__ = ["MilvusStore", "close", "collection_name", "resolve_uri"]
