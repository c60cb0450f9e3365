"""The Milvus backend (issue 26.2) on Milvus Lite: the same search as FAISS, the metadata and the model's name in the
collection, `tvr index --backend milvus` -> `tvr search` / `--remove` / the pipeline, and removals that wait for the
folder swap. The update journey itself runs on both backends in tests/test_index_update.py."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install 'tvr[milvus]'; CI installs it)")

from test_journey_index import tvr, tvr_here  # noqa: E402
from test_retrieval import brute_force_logits, corpus, ranking, saved_model  # noqa: E402,F401  (fixtures)
from tvr.retrieval import VideoIndex, list_video_files, milvus  # noqa: E402
from tvr.retrieval.milvus import MilvusStore, collection_name  # noqa: E402


@pytest.fixture
def lite(tmp_path):
    """A Milvus Lite file, released when the test ends (one process at a time may open it)."""
    uri = str(tmp_path / "videos.db")
    yield uri
    milvus.close(uri)


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_search_is_the_brute_force_ranking_on_either_backend(corpus, saved_model, tmp_path, lite,  # noqa: F811
                                                             backend):
    dataset, processor, video_dir = corpus
    _, model = saved_model
    index = VideoIndex.build(model, processor, video_dir, batch_size=4, progress=False)
    if backend == "milvus":
        index = VideoIndex(model, processor, index.paths, index.encoding,
                           store=MilvusStore.create(lite, tmp_path / "index"))
    captions = list(dataset["caption"])
    logits = brute_force_logits(model, processor, captions, index.paths)
    inputs = processor(text=captions, return_tensors="pt")
    with torch.no_grad():
        inner = model.get_text_embeds(inputs["input_ids"], inputs["attention_mask"]) @ \
            index.encoding.video_embeds.T
    for caption, caption_logits, caption_inner in zip(captions, logits, inner):
        expected = [index.paths[i] for i in torch.argsort(caption_logits, descending=True, stable=True)]
        assert ranking(index.search(caption, top_k=6)) == expected
        first_stage = index.search(caption, top_k=6, rerank_top_k=0)
        np.testing.assert_allclose([score for _, score in first_stage], sorted(caption_inner.tolist(), reverse=True),
                                   atol=1e-6)
    index.save(tmp_path / "index")
    reloaded = VideoIndex.load(tmp_path / "index", model=model, processor=processor)
    assert reloaded.store.info["backend"] == backend
    assert reloaded.search(captions, top_k=3) == index.search(captions, top_k=3)


def test_the_collection_holds_ids_metadata_and_the_model(corpus, saved_model, tmp_path, lite):  # noqa: F811
    _, processor, video_dir = corpus
    model_dir, model = saved_model
    paths = list_video_files(video_dir)
    built = VideoIndex.build(model, processor, paths, batch_size=4, progress=False)
    ids = {path: f"video{row}" for row, path in enumerate(paths)}
    index = VideoIndex(model, processor, paths, built.encoding, ids=ids,
                       store=MilvusStore.create(lite, tmp_path / "my.index", model_dir))
    name = collection_name(tmp_path / "my.index")
    assert name.startswith("tvr_my_index_") and index.store.info["collection"] == name
    client = index.store.client
    rows = client.query(name, filter="id >= 0", output_fields=["id", "path", "video_id", "start", "end", "vector"])
    by_id = {row["id"]: row for row in rows}
    assert sorted(by_id) == list(range(len(paths)))
    for row_id, path in enumerate(paths):
        assert (by_id[row_id]["path"], by_id[row_id]["video_id"]) == (path, f"video{row_id}")
        assert (by_id[row_id]["start"], by_id[row_id]["end"]) == (-1.0, -1.0)  # the whole video
        np.testing.assert_allclose(by_id[row_id]["vector"], built.encoding.video_embeds[row_id].numpy(), atol=1e-6)
    assert client.describe_collection(name)["properties"]["tvr.model"] == str(model_dir)
    # a removal waits for the folder without the row: until then old readers still find it in the collection
    index.save(tmp_path / "my.index")
    index.remove([paths[0]])
    assert len(index.store) == len(paths)  # not deleted yet
    assert paths[0] not in ranking(index.search("a red square", top_k=6, rerank_top_k=0))  # dropped by this reader
    index.save(tmp_path / "my.index")
    assert len(index.store) == len(paths) - 1


def test_index_search_remove_and_pipeline_through_milvus_lite(corpus, saved_model, tmp_path, capsys):  # noqa: F811
    dataset, _, video_dir = corpus
    model_dir, _ = saved_model
    annotations = tmp_path / "test.jsonl"  # a dataset with video ids
    annotations.write_text("".join(json.dumps({"video_id": f"v{i}", "video_path": str(path), "caption": "x"}) + "\n"
                                   for i, path in enumerate(list_video_files(video_dir))))
    uri, out = tmp_path / "videos.db", tmp_path / "my.index"
    run = tvr_here(capsys, "index", model_dir, annotations, out, "--backend", "milvus", "--uri", uri,
                   "--device", "cpu")
    assert run.returncode == 0 and "indexed 6 videos" in run.stdout, run.stderr
    info = tvr_here(capsys, "search", out, "--info").stdout
    assert "backend: milvus" in info and f"uri: {uri}" in info and "index_type: FLAT" in info
    run = tvr_here(capsys, "index", out, "--remove", "v2")
    assert "removed 1 video(s) (1 rows), kept 5 rows" in run.stdout, run.stderr
    milvus.close(str(uri))
    query = "a red square moves left"
    run = tvr("search", out, query, "--top-k", "5", "--json", "--device", "cpu")  # another process opens the file
    assert run.returncode == 0, run.stderr
    found = [result["path"] for result in json.loads(run.stdout)[0]["results"]]
    assert len(found) == 5 and str(list_video_files(video_dir)[2]) not in found
    from transformers import pipeline

    retriever = pipeline("video-text-retrieval", model=str(model_dir), device="cpu")
    assert [result["video"] for result in retriever(query, index=str(out), top_k=5)] == found
    milvus.close(str(uri))
    error = tvr_here(capsys, "index", model_dir, video_dir, tmp_path / "other", "--backend", "milvus").stderr
    assert "tvr: error: --backend milvus needs --uri" in error
