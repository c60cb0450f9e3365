"""A living index (issue 26.1): `tvr index ... --update` / `tvr index IDX --remove` against a fresh build of the final
collection, on both backends; killed updates and a reader during updates; ids in FAISS; retraining on drift; folders
written before updates existed."""

import functools
import importlib.util
import json
import multiprocessing
import os
import shutil
import signal
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from test_fault_injection import run_killed
from test_journey_index import one_error_line, tvr, tvr_here
from test_retrieval import tiny_model
from tvr.data import make_synthetic_dataset
from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
from tvr.retrieval import VideoIndex, updates
from tvr.retrieval.stores import FaissStore, check_drift, measure_recall

# faiss-ivf: an IVF index of one cell (nprobe 1 probes it all: exact), whose lists a load maps from its file
BACKENDS = ["faiss", "faiss-ivf", pytest.param("milvus", marks=pytest.mark.skipif(
    importlib.util.find_spec("pymilvus") is None, reason="pymilvus is not installed (pip install 'tvr[milvus]'; "
                                                          "CI installs it)"))]
QUERIES = ["a red square moves left", "a blue circle appears", "a green triangle"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """215 cheap synthetic videos (2 s, 16 px, 1 fps: 2 frames), a tiny saved model: ``(videos, model_dir, model,
    processor)``."""
    root = tmp_path_factory.mktemp("pool")
    dataset = make_synthetic_dataset(root / "data", 215, size=16, fps=1, duration=2.0, num_events=1, progress=False)
    tokenizer = train_clip_tokenizer(list(dataset["caption"]), root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(TVRVideoProcessor(size=16, crop_size=16, max_frames=2), tokenizer, max_words=16)
    torch.manual_seed(0)
    model = tiny_model(processor, "seqTransf").eval()
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    return sorted((root / "data" / "videos").glob("*.mp4")), root / "model", model, processor


def same_results(updated: VideoIndex, fresh: VideoIndex) -> None:
    """Both stages rank the same videos with the same scores (within 1e-6)."""
    for rerank_top_k in (0, None):
        for got, expected in zip(updated.search(QUERIES, top_k=10, rerank_top_k=rerank_top_k),
                                 fresh.search(QUERIES, top_k=10, rerank_top_k=rerank_top_k)):
            assert [path for path, _ in got] == [path for path, _ in expected]
            np.testing.assert_allclose([score for _, score in got], [score for _, score in expected], atol=1e-6)


def backend_args(backend: str, tmp_path: Path, name: str) -> list:
    if backend == "faiss-ivf":
        return ["--index-type", "ivf", "--nlist", "1"]
    return ["--backend", "milvus", "--uri", tmp_path / f"{name}.db"] if backend == "milvus" else []


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_change_remove_equal_a_fresh_build_of_the_final_collection(pool, tmp_path, capsys, backend):
    videos, model_dir, model, processor = pool
    folder, index = tmp_path / "videos", tmp_path / "my.index"
    folder.mkdir()
    for video in videos[:200]:
        shutil.copy(video, folder)
    run = tvr_here(capsys, "index", model_dir, folder, index, "--device", "cpu", "--batch-size", "50",
                   *backend_args(backend, tmp_path, "videos"))
    assert run.returncode == 0 and "indexed 200 videos" in run.stdout, run.stderr
    if backend == "milvus":  # Milvus Lite serves a file to one process at a time: let `tvr index --update` open it
        from tvr.retrieval import milvus

        milvus.close(str(tmp_path / "videos.db"))
    first_segment = os.stat(index / "encodings.safetensors")
    # the collection changes: 10 uploads, 5 videos re-encoded (other content, same name), 5 deleted
    for video in videos[200:210]:
        shutil.copy(video, folder)
    changed = [folder / videos[i].name for i in range(3, 40, 8)]
    for target, source in zip(changed, videos[210:215]):
        shutil.copy(source, target)
    for video in videos[100:105]:
        (folder / video.name).unlink()
    run = tvr("index", model_dir, folder, index, "--update", "--device", "cpu", "--batch-size", "50")
    assert run.returncode == 0, run.stderr
    assert f"updated {index}: added 10, changed 5, removed 5, kept 190 videos (encoded 15, 0 could not be " \
           "decoded)" in run.stdout
    # only the new encodings were written: the first segment is the same file (hard-linked, not rewritten)
    assert os.stat(index / "encodings.safetensors").st_ino == first_segment.st_ino
    config = json.loads((index / "index_config.json").read_text())
    assert [segment["rows"] for segment in config["segments"]] == [200, 15] and config["next_id"] == 215
    # a video removed by name (it stays in the folder: the fresh build below leaves it out too)
    removed = folder / videos[150].name
    run = tvr_here(capsys, "index", index, "--remove", removed)
    assert run.returncode == 0 and "removed 1 video(s) (1 rows), kept 204 rows" in run.stdout, run.stderr
    error = one_error_line(tvr_here(capsys, "index", index, "--remove", "no-such-video.mp4"))
    assert "--remove: 'no-such-video.mp4' is neither a video_id nor a path of the index" in error

    final = sorted(str(path) for path in folder.glob("*.mp4") if path != removed)
    updated = VideoIndex.load(index, model=model, processor=processor)
    assert sorted(updated.paths) == final and len(updated) == 204
    assert updated.store.info["backend"] == backend.split("-")[0] and len(updated.store) == 204
    if backend == "faiss-ivf":  # the updates changed lists a load had mapped read-only: copied first, then saved
        assert updated.store.info["index_type"] == "ivf" and updated.store.mapped_lists is not None
    fresh_store = None
    if backend == "milvus":
        from tvr.retrieval.milvus import MilvusStore

        fresh_store = MilvusStore.create(str(tmp_path / "fresh.db"), tmp_path / "fresh.index")
    fresh = VideoIndex.build(model, processor, final, batch_size=50, progress=False)
    if fresh_store is not None:
        fresh = VideoIndex(model, processor, fresh.paths, fresh.encoding, store=fresh_store)
    same_results(updated, fresh)
    # an update with nothing changed encodes nothing and keeps every row and id
    run = tvr_here(capsys, "index", model_dir, folder, index, "--update", "--device", "cpu")
    assert "added 1, changed 0, removed 0, kept 204 videos (encoded 1," in run.stdout  # the one removed by name
    again = VideoIndex.load(index, model=model, processor=processor)
    assert dict(zip(again.paths, again.row_ids)).items() >= dict(zip(updated.paths, updated.row_ids)).items()
    if backend == "milvus":
        milvus.close(str(tmp_path / "videos.db"))
        milvus.close(str(tmp_path / "fresh.db"))
    info = tvr_here(capsys, "search", index, "--info").stdout
    assert f"backend: {backend.split('-')[0]}" in info and "ids: int64 row ids, next id 216" in info


def small_collection(videos, count=24):
    return [str(video) for video in videos[:count]]


def test_a_killed_update_leaves_the_old_index_and_resumes(pool, tmp_path, monkeypatch):
    videos, _, model, processor = pool
    old_paths, new_paths = small_collection(videos[:24]), small_collection(videos[4:30], 26)
    folder = tmp_path / "idx"
    VideoIndex.build(model, processor, old_paths, batch_size=8, progress=False).save(folder)
    old = VideoIndex.load(folder, model=model, processor=processor)
    resume = tmp_path / "idx.partial"

    def update_and_save():
        index = VideoIndex.load(folder, model=model, processor=processor)
        index.update(new_paths, batch_size=4, resume_dir=resume, progress=False, shard_size=4)
        index.save(folder)

    for phase in ("planned", "encoded", "applied", "staged"):
        def killed(phase=phase):
            updates.phase_hook = lambda name: name == phase and os.kill(os.getpid(), signal.SIGKILL)
            update_and_save()

        run_killed(killed)
        after = VideoIndex.load(folder, model=model, processor=processor)  # loadable, and the old index
        assert after.paths == old.paths and np.array_equal(after.row_ids, old.row_ids)
        same_results(after, old)
    # resumed: the shards encoded before the kills are not encoded again
    from tvr.retrieval import shards

    encoded, original = [], shards.encode_video_batches
    monkeypatch.setattr(updates, "phase_hook", None)
    monkeypatch.setattr(shards, "encode_video_batches",
                        lambda model, processor, paths, *args, **kwargs: (encoded.extend(paths), original(
                            model, processor, paths, *args, **kwargs))[1])
    update_and_save()
    assert encoded == []  # every shard was finished before the kill at "encoded"
    same_results(VideoIndex.load(folder, model=model, processor=processor),
                 VideoIndex.build(model, processor, new_paths, batch_size=8, progress=False))


def test_a_reader_during_updates_gets_the_old_or_the_new_index(pool, tmp_path):
    videos, _, model, processor = pool
    first, second = small_collection(videos[:10], 10), small_collection(videos[3:13], 10)
    folder = tmp_path / "idx"
    VideoIndex.build(model, processor, first, batch_size=10, progress=False).save(folder)

    def write():  # a forked writer: four updates, between the two collections
        for step in range(4):
            index = VideoIndex.load(folder, model=model, processor=processor)
            index.update([second, first][step % 2], batch_size=10, progress=False)
            index.save(folder)

    writer = multiprocessing.get_context("fork").Process(target=write)
    writer.start()
    seen = []
    while writer.is_alive() or not seen:
        index = VideoIndex.load(folder, model=model, processor=processor)
        found = {path for path, _ in index.search(QUERIES[0], top_k=20, rerank_top_k=0)}
        seen.append((frozenset(index.paths), found))
    writer.join()
    assert writer.exitcode == 0 and len(seen) >= 3
    for paths, found in seen:  # never a mix: the paths of one version, its store finding exactly them
        assert paths in (frozenset(first), frozenset(second)) and found == paths


def test_a_load_that_fails_across_a_swap_reads_the_new_version(pool, tmp_path, monkeypatch):
    videos, _, model, processor = pool
    first, second = small_collection(videos[:10], 10), small_collection(videos[3:13], 10)
    folder = tmp_path / "idx"
    VideoIndex.build(model, processor, first, batch_size=10, progress=False).save(folder)
    load_once, calls = VideoIndex._load_once.__func__, []

    def swapped_midway(cls, *args):  # an update swapped the folder while this load read it: a mixed read
        calls.append(len(calls))
        if len(calls) == 1:
            index = load_once(cls, *args)
            index.update(second, batch_size=10, progress=False)
            index.save(folder)
            raise IndexError("index 1 is out of bounds for axis 0 with size 1")
        return load_once(cls, *args)

    monkeypatch.setattr(VideoIndex, "_load_once", classmethod(swapped_midway))
    assert sorted(VideoIndex.load(folder, model=model, processor=processor).paths) == sorted(second)
    assert len(calls) == 2

    def broken(cls, *args):  # the same error with the folder unchanged is the index's own: raised
        calls.append(len(calls))
        raise IndexError("index 1 is out of bounds for axis 0 with size 1")

    monkeypatch.setattr(VideoIndex, "_load_once", classmethod(broken))
    with pytest.raises(IndexError, match="out of bounds"):
        VideoIndex.load(folder, model=model, processor=processor)
    assert len(calls) == 3


def test_an_index_written_before_updates_loads_and_updates(pool, tmp_path):
    videos, _, model, processor = pool
    first, final = small_collection(videos[:20], 20), small_collection(videos[5:28], 23)
    folder = tmp_path / "idx"
    VideoIndex.build(model, processor, first, batch_size=10, progress=False).save(folder)
    # what main's tvr wrote: one encodings file, a bare IndexFlatIP, no row table, no store entry
    config = json.loads((folder / "index_config.json").read_text())
    flat = faiss.IndexFlatIP(config["dim"])
    flat.add(VideoIndex.load(folder, model=model, processor=processor).encoding.video_embeds.float().numpy())
    faiss.write_index(flat, str(folder / "index.faiss"))
    (folder / "rows.safetensors").unlink()
    from tvr.retrieval.index import _sha256

    for key in ("store", "segments", "next_id"):
        config.pop(key)
    config["files"] = {name: {"size": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
                       for name in ("encodings.safetensors", "index.faiss", "videos.json")}
    (folder / "index_config.json").write_text(json.dumps(config))
    legacy = VideoIndex.load(folder, model=model, processor=processor)
    assert np.array_equal(legacy.row_ids, np.arange(20))
    report = legacy.update(final, batch_size=10, progress=False)
    assert (len(report.added), len(report.removed), report.kept, report.encoded) == (8, 5, 15, 8)
    legacy.save(folder)
    same_results(VideoIndex.load(folder, model=model, processor=processor),
                 VideoIndex.build(model, processor, final, batch_size=10, progress=False))


def clustered(count, dim=16, clusters=20, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    vectors = centres[rng.integers(clusters, size=count)] + rng.normal(size=(count, dim)) * 0.5
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("index_type", ["flat", "ivf", "ivf-hnsw"])
def test_faiss_store_adds_removes_and_finds_by_id(index_type):
    vectors = clustered(3000)
    ids = np.arange(3000, dtype=np.int64) * 7 + 5  # not row numbers
    by_id = dict(zip(ids.tolist(), vectors))
    gather = functools.partial(lambda table, wanted: np.stack([table.get(int(i), vectors[0]) for i in
                                                               np.ravel(wanted)]).reshape(*np.shape(wanted), -1),
                               by_id)
    store = FaissStore.build(ids[:2000], vectors[:2000], index_type, nprobe=None if index_type == "ivf-hnsw" else 1000,
                             target_recall=1.0, gather=gather)
    store.add(ids[2000:], vectors[2000:])
    assert store.remove(ids[:500]) == 500 and store.remove(np.array([1], dtype=np.int64)) == 0
    assert len(store) == 2500 and store.info["changed_since_check"] == 1500
    scores, found = store.search(vectors[[600, 2500]], 3)
    assert found[:, 0].tolist() == [ids[600], ids[2500]]  # each finds itself, by id
    np.testing.assert_allclose(scores[:, 0], [1.0, 1.0], atol=2e-3 if index_type == "ivf-hnsw" else 1e-5)
    kept = np.arange(500, 3000)
    exact = vectors[kept] @ vectors[600]
    assert set(found[0].tolist()) == set(ids[kept[np.argsort(-exact)[:3]]].tolist())
    assert not np.isin(found, ids[:500]).any()


def test_drift_past_the_threshold_measures_recall_and_retrains_below_target():
    vectors, ids = clustered(4000, seed=1), np.arange(4000, dtype=np.int64)
    store = FaissStore.build(ids[:2000], vectors[:2000], "ivf", nlist=40, nprobe=1)
    reference = store.info["measured_recall"]
    assert store.info["trained_on"] == 2000 and reference == round(measure_recall(store, vectors[:2000],
                                                                                  ids[:2000]), 4)
    said = []
    assert check_drift(store, vectors[:2000], ids[:2000], 0.2, said.append) is store and said == []  # no change
    store.add(ids[2000:2300], vectors[2000:2300])  # 15 % changed: below the threshold, nothing measured
    assert check_drift(store, lambda: pytest.fail("read"), ids[:2300], 0.2, said.append) is store and said == []
    store.add(ids[2300:], vectors[2300:])
    store.remove(ids[:1000])
    store.info["measured_recall"] = 1.0  # a target it cannot meet at nprobe 1: retrained
    current = ids[1000:]
    retrained = check_drift(store, vectors[1000:], current, 0.2, said.append)
    assert retrained is not store and len(said) == 1 and "retrained on 3000 videos" in said[0]
    assert retrained.info["trained_on"] == 3000 and retrained.info["changed_since_check"] == 0
    assert said[0].startswith("index drifted 150% since its last check: recall@10 ")
    _, found = retrained.search(vectors[[1000, 3999]], 1)
    assert found[:, 0].tolist() == [1000, 3999]  # the ids survive the retraining
