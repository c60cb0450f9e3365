"""VideoIndex and ``tvr index`` / ``tvr search`` on real synthetic videos with tiny random CLIP4Clip models."""

import json
import shutil

import numpy as np
import pytest
import torch

from model_testers import RetrievalModelTester
from tvr import CLIP4ClipModel
from tvr.cli import main
from tvr.data import make_synthetic_dataset
from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
from tvr.retrieval import VideoIndex, default_nlist, list_video_files

NUM_VIDEOS = 6
MAX_WORDS = 16


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``(dataset, processor, video_dir)``: synthetic videos with their captions and a processor whose tokenizer
    was trained on them."""
    root = tmp_path_factory.mktemp("corpus")
    dataset = make_synthetic_dataset(root / "data", NUM_VIDEOS, size=32, fps=4, duration=4.0, num_events=2,
                                     progress=False)
    tokenizer = train_clip_tokenizer(list(dataset["caption"]), root / "tokenizer", vocab_size=600)
    video_processor = TVRVideoProcessor(size=16, crop_size=16, max_frames=4)
    return dataset, TVRProcessor(video_processor, tokenizer, max_words=MAX_WORDS), root / "data" / "videos"


def tiny_model(processor, sim_header: str) -> CLIP4ClipModel:
    tokenizer = processor.tokenizer
    text_config = {"vocab_size": len(tokenizer), "max_position_embeddings": MAX_WORDS,
                   "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return RetrievalModelTester(text_config=text_config, sim_header=sim_header, max_words=MAX_WORDS).model()


@pytest.fixture(scope="module")
def saved_model(corpus, tmp_path_factory):
    """A tiny seqTransf CLIP4Clip saved with its processor: ``(model_dir, model)``."""
    _, processor, _ = corpus
    model = tiny_model(processor, "seqTransf")
    model_dir = tmp_path_factory.mktemp("model")
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    return model_dir, model


def brute_force_logits(model, processor, captions, paths) -> torch.Tensor:
    """``model.similarity`` of every caption with every video, in one forward pass."""
    inputs = processor(text=captions, videos=paths, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits_per_text


def ranking(results) -> list[str]:
    return [path for path, _ in results]


def test_search_is_the_brute_force_ranking_of_the_model(corpus, saved_model, monkeypatch):
    dataset, processor, video_dir = corpus
    _, model = saved_model
    # frames leave the processor as uint8 and are normalised on the model's device (the index equals the float path)
    import tvr.processing.normalization as normalization

    normalized_dtypes, normalize = [], normalization.normalize_videos
    monkeypatch.setattr(normalization, "normalize_videos",
                        lambda frames, *args, **kwargs: (normalized_dtypes.append(frames.dtype),
                                                         normalize(frames, *args, **kwargs))[1])
    index = VideoIndex.build(model, processor, video_dir, batch_size=4, progress=False)
    assert normalized_dtypes == [torch.uint8] * 2  # 6 videos in batches of 4
    paths = sorted(str(path) for path in video_dir.glob("*.mp4"))
    assert index.paths == paths  # the folder's videos, sorted
    captions = list(dataset["caption"])
    logits = brute_force_logits(model, processor, captions, paths)
    # a loose head's logit is exp(logit_scale) * the inner product the index holds
    expected_scores = logits / model.clip.logit_scale.exp().detach()

    # the first stage alone (rerank_top_k=0): FAISS's inner products
    results = index.search(captions, top_k=NUM_VIDEOS, rerank_top_k=0)
    for row, ranked in enumerate(results):
        order = torch.argsort(logits[row], descending=True).tolist()
        assert ranking(ranked) == [paths[i] for i in order]
        np.testing.assert_allclose([score for _, score in ranked], expected_scores[row, order].numpy(), atol=1e-5)
    # by default the model re-scores the candidates: the same ranking, scored with the model's own logits
    assert index.score_name(None) == "similarity" and index.score_name(0) == "inner_product"
    for row, ranked in enumerate(index.search(captions, top_k=NUM_VIDEOS)):
        order = torch.argsort(logits[row], descending=True).tolist()
        assert ranking(ranked) == [paths[i] for i in order]
        np.testing.assert_allclose([score for _, score in ranked], logits[row, order].numpy(), atol=1e-4)
    results = index.search(captions, top_k=NUM_VIDEOS)
    # top_k cuts the same ranking; one caption gives one list
    single = index.search(captions[2], top_k=3)
    assert ranking(single) == ranking(results[2][:3])
    assert [score for _, score in single] == pytest.approx([score for _, score in results[2][:3]], abs=1e-6)
    # the indexed vectors are the model's get_video_embeds
    inputs = processor(videos=paths, return_tensors="pt")
    with torch.no_grad():
        features = model.get_video_embeds(inputs["pixel_values_videos"], inputs["video_mask"])
    torch.testing.assert_close(index.encoding.video_embeds, features, atol=1e-6, rtol=1e-5)


def test_save_and_load_give_identical_results(corpus, saved_model, tmp_path):
    dataset, processor, video_dir = corpus
    model_dir, _ = saved_model
    index = VideoIndex.from_model_dir(model_dir, video_dir, device="cpu", batch_size=4, progress=False)
    index.save(tmp_path / "index")
    loaded = VideoIndex.load(tmp_path / "index", device="cpu")  # reloads the model from the saved model_dir
    assert loaded.model_dir == str(model_dir.resolve())
    assert loaded.paths == index.paths
    for name, value in index.encoding.items():
        assert torch.equal(getattr(loaded.encoding, name), value)
    captions = list(dataset["caption"])
    assert loaded.search(captions, top_k=4) == index.search(captions, top_k=4)
    assert loaded.search(captions, top_k=4, rerank_top_k=5) == index.search(captions, top_k=4, rerank_top_k=5)


def test_rerank_gives_the_tight_heads_own_order(corpus):
    """tightTransf scores pairs with a cross encoder: its index holds mean-pooled CLIP frames, and re-ranking the
    FAISS candidates with ``similarity`` gives the model's own order and scores."""
    dataset, processor, _ = corpus
    model = tiny_model(processor, "tightTransf")
    paths = list(dataset["video_path"])
    index = VideoIndex.build(model, processor, paths, batch_size=4, progress=False)
    captions = list(dataset["caption"])
    logits = brute_force_logits(model, processor, captions, paths)

    # re-ranking every video: exactly the model's ranking and logits
    for row, ranked in enumerate(index.search(captions, top_k=NUM_VIDEOS, rerank_top_k=NUM_VIDEOS)):
        order = torch.argsort(logits[row], descending=True).tolist()
        assert ranking(ranked) == [paths[i] for i in order]
        np.testing.assert_allclose([score for _, score in ranked], logits[row, order].numpy(), atol=1e-5)

    # re-ranking 4 candidates: the first stage's top 4, re-ordered by the model, best 2 returned
    first_stage = index.search(captions, top_k=4, rerank_top_k=0)
    for row, (candidates, ranked) in enumerate(zip(first_stage, index.search(captions, top_k=2, rerank_top_k=4))):
        columns = [paths.index(path) for path in ranking(candidates)]
        best = sorted(columns, key=lambda column: -logits[row, column].item())[:2]
        assert ranking(ranked) == [paths[i] for i in best]
    # the first stage alone differs from the model's ranking here, so the re-ranking did the work
    assert any(ranking(a) != ranking(b)[:4] for a, b in zip(
        first_stage, index.search(captions, top_k=NUM_VIDEOS, rerank_top_k=NUM_VIDEOS)))
    # the pipeline (and the app, through it) gives rerank_top_k the same meaning and names its score
    from transformers import pipeline

    import tvr  # noqa: F401  (registers the pipelines)

    retriever = pipeline("video-text-retrieval", model=model, processor=processor, device=-1)
    for rerank_top_k, name in ((4, "similarity"), (0, "inner_product")):
        found = retriever(captions[0], index=index, top_k=2, rerank_top_k=rerank_top_k)
        assert [(r["video"], r["score"], r["score_name"]) for r in found] == [
            (path, pytest.approx(score, abs=1e-6), name)
            for path, score in index.search(captions[0], top_k=2, rerank_top_k=rerank_top_k)]


def test_ivf_index_probing_every_cell_is_exact(corpus, saved_model):
    dataset, processor, video_dir = corpus
    _, model = saved_model
    flat = VideoIndex.build(model, processor, video_dir, batch_size=NUM_VIDEOS, progress=False)
    ivf = VideoIndex(model, processor, flat.paths, flat.encoding, index_type="ivf", nlist=2, nprobe=2)
    captions = list(dataset["caption"])
    assert ranking(ivf.search(captions[0], top_k=NUM_VIDEOS)) == ranking(flat.search(captions[0], top_k=NUM_VIDEOS))
    assert [default_nlist(n) for n in (10, 100, 10_000, 1_000_000)] == [1, 2, 256, 4000]


def test_unreadable_videos_are_reported_not_indexed(corpus, saved_model, tmp_path):
    _, processor, video_dir = corpus
    _, model = saved_model
    folder = tmp_path / "videos"
    shutil.copytree(video_dir, folder)
    (folder / "broken.mp4").write_bytes(b"not a video")
    (folder / "notes.txt").write_text("not a video either, and not a video file name")
    with pytest.warns(UserWarning, match="1 of 7 videos could not be decoded"):
        index = VideoIndex.build(model, processor, folder, batch_size=4, progress=False)
    assert len(index) == NUM_VIDEOS
    assert list(index.failed) == [str(folder / "broken.mp4")]


def test_errors_name_the_bad_input(corpus, saved_model, tmp_path):
    _, processor, video_dir = corpus
    model_dir, model = saved_model
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no video files"):
        list_video_files(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoIndex.build(model, processor, tmp_path / "missing", progress=False)
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        VideoIndex.from_model_dir(tmp_path / "empty", video_dir)
    with pytest.raises(FileNotFoundError, match="is not an index folder"):
        VideoIndex.load(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.mp4").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="none of the 1 videos could be decoded"):
        VideoIndex.build(model, processor, tmp_path / "bad", progress=False)
    index = VideoIndex.build(model, processor, video_dir, progress=False)
    with pytest.raises(ValueError, match="rerank_top_k \\(2\\) must be >= top_k \\(3\\) or 0"):
        index.search("a red circle", top_k=3, rerank_top_k=2)
    with pytest.raises(ValueError, match="rerank_top_k must be >= 0 \\(0: first stage only\\), got -1"):
        index.search("a red circle", rerank_top_k=-1)
    with pytest.raises(ValueError, match="candidates \\(4\\) must be >= top_k \\(3\\) and rerank_top_k \\(5\\)"):
        index.search("a red circle", top_k=3, rerank_top_k=5, candidates=4)


def test_index_and_search_commands(corpus, saved_model, tmp_path, capsys):
    dataset, _, video_dir = corpus
    model_dir, _ = saved_model
    assert main(["index", str(model_dir), str(video_dir), str(tmp_path / "index"), "--batch-size", "4",
                 "--device", "cpu"]) == 0
    assert f"indexed {NUM_VIDEOS} videos" in capsys.readouterr().out
    query = dataset[0]["caption"]
    assert main(["search", str(tmp_path / "index"), query, "--top-k", "3", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed.pop(0).startswith("score: similarity (the model's own")  # what the scores are, by name
    expected = VideoIndex.load(tmp_path / "index", device="cpu").search(query, top_k=3)
    assert printed[0] == f"query: {query}"
    assert [line.split()[0] for line in printed[1:]] == ["1.", "2.", "3."]
    assert [line.split()[-1] for line in printed[1:]] == ranking(expected)
    assert [float(line.split()[1]) for line in printed[1:]] == pytest.approx([s for _, s in expected], abs=1e-4)
    # --rerank-top-k 0: FAISS's first stage alone, named so; --json names the score of every result
    assert main(["search", str(tmp_path / "index"), query, "--top-k", "3", "--rerank-top-k", "0", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    first_stage = VideoIndex.load(tmp_path / "index", device="cpu").search(query, top_k=3, rerank_top_k=0)
    assert [(r["path"], r["score_name"]) for r in answer[0]["results"]] == [(p, "inner_product") for p, _ in first_stage]
    assert [r["score"] for r in answer[0]["results"]] == pytest.approx([s for _, s in first_stage], abs=1e-6)
    assert set(answer[0]) == {"query", "results"}  # no description string under "score"
