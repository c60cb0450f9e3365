"""The evaluation harness on a fake model and processor that follow the model contract, so every score is known.

How a gallery is scored (blocks, two stages) is the model's `score_gallery`, tested with each method; here the
harness must only pass its options through."""

from dataclasses import dataclass

import datasets
import pytest
import torch
from torch import nn
from transformers.utils import ModelOutput

from tvr.evaluation import compute_retrieval_metrics, postprocessed_metrics, qb_norm
from tvr.evaluation.harness import evaluate_retrieval

# words -> directions; a caption's vector is the sum of its words, a video's the mean of its frames' colours
WORDS = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "blue": [0.0, 0.0, 1.0]}
VIDEO_COLOURS = {
    "a.mp4": [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
    "b.mp4": [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],  # mean (0, .5, .5)
    "c.mp4": [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
    "d.mp4": [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]],
}


@dataclass
class FakeTextEncoding(ModelOutput):
    text_embeds: torch.Tensor | None = None


@dataclass
class FakeVideoEncoding(ModelOutput):
    video_embeds: torch.Tensor | None = None
    video_mask: torch.Tensor | None = None


class FakeProcessor:
    """Token ids index ``WORDS``; a video is two 1x1 frames of its colours; records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, text=None, videos=None, return_tensors=None, **kwargs):
        assert return_tensors == "pt"
        self.calls.append({"text": text, "videos": videos, **kwargs})
        if text is not None:
            ids = [[list(WORDS).index(word) for word in caption.split()] for caption in text]
            width = max(map(len, ids))
            input_ids = torch.tensor([row + [0] * (width - len(row)) for row in ids])
            attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
            return {"input_ids": input_ids, "attention_mask": attention_mask}
        frames = torch.tensor([VIDEO_COLOURS[path] for path in videos])  # (batch, 2 frames, 3)
        video_mask = torch.ones(len(videos), 2, dtype=torch.long)
        return {"pixel_values_videos": frames[..., None, None], "video_mask": video_mask}


class FakeModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.words = nn.Parameter(torch.tensor(list(WORDS.values())))
        self.gallery_calls = []
        self.training_during_calls = []

    def encode_text(self, input_ids, attention_mask):
        self.training_during_calls.append(self.training)
        return FakeTextEncoding((self.words[input_ids] * attention_mask[..., None]).sum(1))

    def encode_video(self, pixel_values_videos, video_mask):
        assert pixel_values_videos.shape[1:] == (2, 3, 1, 1)
        return FakeVideoEncoding(pixel_values_videos[..., 0, 0].mean(1), video_mask)

    def score_gallery(self, text_encoding, video_encoding, block_size=None, progress=True, **kwargs):
        self.gallery_calls.append({"shape": (len(text_encoding.text_embeds), len(video_encoding.video_embeds)),
                                   "block_size": block_size, **kwargs})
        return (text_encoding.text_embeds @ video_encoding.video_embeds.T).float().cpu()


def _vector(caption):
    return torch.tensor([WORDS[word] for word in caption.split()]).sum(0)


def _expected_similarity(captions, paths):
    texts = torch.stack([_vector(caption) for caption in captions])
    videos = torch.tensor([VIDEO_COLOURS[path] for path in paths]).mean(1)
    return texts @ videos.T


# multi-caption rows in a non-contiguous order: videos in first appearance order are b, a, c
ROWS = {
    "video_id": ["vb", "va", "vb", "vc", "va"],
    "video_path": ["b.mp4", "a.mp4", "b.mp4", "c.mp4", "a.mp4"],
    "caption": ["green", "red", "blue green", "blue", "red green"],
}


def test_single_caption_similarity_and_metrics_by_hand():
    dataset = datasets.Dataset.from_dict(
        {
            "video_id": ["a", "b", "c", "d"],
            "video_path": ["a.mp4", "b.mp4", "c.mp4", "d.mp4"],
            "caption": ["red", "green", "blue", "red green"],
            "start": [None] * 4,
            "end": [None] * 4,
        }
    )
    model, processor = FakeModel(), FakeProcessor()
    result = evaluate_retrieval(model, processor, dataset, batch_size=3, return_similarity=True, progress=False)
    expected = _expected_similarity(dataset["caption"], dataset["video_path"])
    torch.testing.assert_close(result.similarity, expected)
    # rows: red [1, 0, 0, .5] -> 1; green [0, .5, 0, .5] -> tie with d -> 2; blue [0, .5, 1, 0] -> 1;
    # red green [1, .5, 0, 1] -> tie with a -> 2 (ties count against the ground truth)
    assert result.metrics["t2v_R@1"] == 50.0
    assert result.metrics["t2v_MeanR"] == 1.5
    assert result.metrics == compute_retrieval_metrics(expected)
    assert result.video_ids == ["a", "b", "c", "d"]
    assert result.text_to_video.tolist() == [0, 1, 2, 3]
    # batches of 3 texts and 3 videos; whole videos: no start/end passed
    assert [len(call["text"] or call["videos"]) for call in processor.calls] == [3, 1, 3, 1]
    assert all("start" not in call for call in processor.calls)
    # the whole gallery goes to the model's score_gallery once, with its own defaults
    assert model.gallery_calls == [{"shape": (4, 4), "block_size": None}]


def test_multi_caption_grouping_blocks_and_eval_mode():
    dataset = datasets.Dataset.from_dict(ROWS)
    model, processor = FakeModel(), FakeProcessor()
    model.train()
    result = evaluate_retrieval(model, processor, dataset, batch_size=16, return_similarity=True, progress=False)
    assert result.video_ids == ["vb", "va", "vc"]
    assert result.text_to_video.tolist() == [0, 1, 0, 2, 1]
    # each video decoded once, in first-appearance order
    assert [call["videos"] for call in processor.calls if call["videos"]] == [["b.mp4", "a.mp4", "c.mp4"]]
    expected = _expected_similarity(ROWS["caption"], ["b.mp4", "a.mp4", "c.mp4"])
    torch.testing.assert_close(result.similarity, expected)
    assert result.metrics == compute_retrieval_metrics(expected, [0, 1, 0, 2, 1])
    assert model.gallery_calls == [{"shape": (5, 3), "block_size": None}]
    assert model.training_during_calls == [False] and model.training


def test_block_size_and_rerank_top_k_pass_through():
    dataset = datasets.Dataset.from_dict(ROWS)
    model = FakeModel()
    evaluate_retrieval(model, FakeProcessor(), dataset, block_size=4, progress=False)
    evaluate_retrieval(model, FakeProcessor(), dataset, block_size=2, rerank_top_k=0, progress=False)
    assert model.gallery_calls == [
        {"shape": (5, 3), "block_size": 4},
        {"shape": (5, 3), "block_size": 2, "rerank_top_k": 0},
    ]


def test_clips_pass_start_and_end():
    dataset = datasets.Dataset.from_dict(
        {**ROWS, "start": [1.0, None, 1.0, 2.5, None], "end": [3.0, None, 3.0, 4.0, None]}
    )
    processor = FakeProcessor()
    evaluate_retrieval(FakeModel(), processor, dataset, batch_size=2, progress=False)
    video_calls = [call for call in processor.calls if call["videos"]]
    uint8 = {"do_rescale": False, "do_normalize": False}  # frames are normalised on the device
    assert video_calls == [
        {"text": None, "videos": ["b.mp4", "a.mp4"], "start": [1.0, None], "end": [3.0, None], **uint8},
        {"text": None, "videos": ["c.mp4"], "start": [2.5], "end": [4.0], **uint8},
    ]


def test_postprocessing_beside_plain_metrics():
    dataset = datasets.Dataset.from_dict(ROWS)
    bank = ["red", "red green", "blue"]
    result = evaluate_retrieval(
        FakeModel(),
        FakeProcessor(),
        dataset,
        postprocessing=("dsl", "inverted_softmax", "qb_norm"),
        query_bank=bank,
        postprocessing_options={"qb_norm": {"beta": 1.0}},
        return_similarity=True,
        progress=False,
    )
    videos = ["b.mp4", "a.mp4", "c.mp4"]
    sim, bank_sim = _expected_similarity(ROWS["caption"], videos), _expected_similarity(bank, videos)
    plain = compute_retrieval_metrics(sim, [0, 1, 0, 2, 1])
    extra = postprocessed_metrics(sim, [0, 1, 0, 2, 1], ("dsl", "inverted_softmax"))
    qb = compute_retrieval_metrics(qb_norm(sim, bank_sim, beta=1.0), [0, 1, 0, 2, 1])
    assert result.metrics == {**plain, **extra, **{f"qb_norm/{k}": v for k, v in qb.items() if k.startswith("t2v")}}
    assert result.similarity.shape == (5, 3)


def test_bad_arguments_are_named():
    dataset = datasets.Dataset.from_dict(ROWS)
    with pytest.raises(ValueError, match="qb_norm' needs query_bank"):
        evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, postprocessing=("qb_norm",), progress=False)
    with pytest.raises(ValueError, match="unknown post-processing"):
        evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, postprocessing=("dls",), progress=False)
    with pytest.raises(ValueError, match=r"lacks columns \['video_path'\]"):
        evaluate_retrieval(FakeModel(), FakeProcessor(), {"video_id": ["a"], "caption": ["red"]}, progress=False)


def test_accelerator_unwraps_and_sets_the_device():
    accelerate = pytest.importorskip("accelerate")
    from accelerate.state import AcceleratorState

    try:
        accelerator = accelerate.Accelerator(cpu=True)
        model = accelerator.prepare(FakeModel())
        result = evaluate_retrieval(model, FakeProcessor(), datasets.Dataset.from_dict(ROWS), accelerator=accelerator)
        expected = _expected_similarity(ROWS["caption"], ["b.mp4", "a.mp4", "c.mp4"])
        assert result.metrics == compute_retrieval_metrics(expected, [0, 1, 0, 2, 1])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


# ------------------------------------------------------------------ a tiny random CLIP4Clip on real synthetic videos


def make_tiny_clip4clip(folder, num_videos=5):
    """Synthetic test videos (``folder/data``), a BPE tokenizer trained on their captions, a tiny random CLIP4Clip
    and its ``TVRProcessor``; returns ``(model, processor, dataset)``."""
    from model_testers import tiny_text_config, tiny_vision_config
    from tvr import CLIP4ClipConfig, CLIP4ClipModel
    from tvr.data import make_synthetic_dataset
    from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer

    dataset = make_synthetic_dataset(folder / "data", num_videos, size=32, fps=5, duration=4.0, num_events=2,
                                     progress=False)
    tokenizer = train_clip_tokenizer(list(dataset["caption"]), folder / "tokenizer", vocab_size=600)
    text_config = tiny_text_config(
        vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    torch.manual_seed(0)
    model = CLIP4ClipModel(
        CLIP4ClipConfig(text_config=text_config, vision_config=tiny_vision_config(), projection_dim=32,
                        max_frames=4, max_words=8)
    ).eval()
    video_processor = TVRVideoProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}, max_frames=4)
    return model, TVRProcessor(video_processor, tokenizer, max_words=8), dataset


def test_tiny_clip4clip_on_synthetic_videos(tmp_path):
    model, processor, dataset = make_tiny_clip4clip(tmp_path)
    result = evaluate_retrieval(model, processor, dataset, batch_size=2, block_size=3, return_similarity=True,
                                postprocessing=("dsl",), progress=False)
    # the same scores as one forward pass over the whole set
    inputs = processor(text=list(dataset["caption"]), videos=list(dataset["video_path"]), return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits_per_text
    torch.testing.assert_close(result.similarity, expected, rtol=1e-5, atol=1e-5)
    assert result.video_ids == list(dataset["video_id"])
    assert result.metrics == {**compute_retrieval_metrics(result.similarity),
                              **postprocessed_metrics(result.similarity, None, ("dsl",))}


def test_eval_cli_on_a_saved_model(tmp_path):
    import json

    from tvr.cli import main

    model, processor, dataset = make_tiny_clip4clip(tmp_path)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    output = tmp_path / "eval_results.json"
    code = main(
        ["eval", str(tmp_path / "model"), "--dataset", "jsonl", "--annotations", str(tmp_path / "data"),
         "--batch-size", "2", "--device", "cpu", "--dsl", "--qb-norm", "--qb-norm-split", "test",
         "--output", str(output)]
    )
    assert code == 0
    results = json.loads(output.read_text())
    expected = evaluate_retrieval(model, processor, dataset, postprocessing=("dsl", "qb_norm"),
                                  query_bank=list(dataset["caption"]), progress=False).metrics
    assert {key: results[key] for key in expected} == pytest.approx(expected)
    assert [results[key] for key in ("dataset", "split", "num_texts", "num_videos")] == ["data", "test", 5, 5]


def test_frame_cache_gives_the_same_similarity_and_is_read_back(tmp_path, monkeypatch):
    from tvr.cli import main
    from tvr.processing.video_processing_tvr import TVRVideoProcessor

    model, processor, dataset = make_tiny_clip4clip(tmp_path)
    plain = evaluate_retrieval(model, processor, dataset, batch_size=2, return_similarity=True, progress=False)
    cache = tmp_path / "frames"
    cached = evaluate_retrieval(model, processor, dataset, batch_size=2, return_similarity=True, progress=False,
                                frame_cache_dir=cache)
    assert len(list(cache.rglob("*.npy"))) == 5
    assert torch.equal(cached.similarity, plain.similarity) and cached.metrics == plain.metrics

    def no_decoding(*args, **kwargs):
        raise RuntimeError("decoder called")

    monkeypatch.setattr(TVRVideoProcessor, "_decode_and_sample_videos", no_decoding)
    again = evaluate_retrieval(model, processor, dataset, batch_size=2, return_similarity=True, progress=False,
                               frame_cache_dir=cache, on_bad_video="error")
    assert torch.equal(again.similarity, plain.similarity)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    saved = tmp_path / "similarity.pt"
    assert main(["eval", str(tmp_path / "model"), "--dataset", "jsonl", "--annotations", str(tmp_path / "data"),
                 "--batch-size", "2", "--device", "cpu", "--frame-cache", str(cache), "--on-bad-video", "error",
                 "--save-similarity", str(saved)]) == 0
    # (the reloaded model may differ from the in-memory one in float rounding)
    torch.testing.assert_close(torch.load(saved)["similarity"], plain.similarity, rtol=1e-5, atol=1e-6)


def test_bf16_evaluation_runs_under_autocast_and_stays_close(tmp_path, monkeypatch):
    from tvr.cli import main

    model, processor, dataset = make_tiny_clip4clip(tmp_path)
    plain = evaluate_retrieval(model, processor, dataset, batch_size=2, return_similarity=True, progress=False)
    encode_video, dtypes = model.encode_video, []

    def recording_encode_video(*args, **kwargs):
        dtypes.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return encode_video(*args, **kwargs)

    monkeypatch.setattr(model, "encode_video", recording_encode_video)
    bf16 = evaluate_retrieval(model, processor, dataset, batch_size=2, return_similarity=True, progress=False,
                              mixed_precision="bf16")
    assert dtypes == [torch.bfloat16] * 3  # 5 videos in batches of 2
    assert not torch.equal(bf16.similarity, plain.similarity)  # really computed in bf16 ...
    torch.testing.assert_close(bf16.similarity, plain.similarity, rtol=0.05, atol=0.05)  # ... within its precision
    with pytest.raises(ValueError, match="'fp8'"):
        evaluate_retrieval(model, processor, dataset, mixed_precision="fp8", progress=False)
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    saved = tmp_path / "similarity.pt"
    assert main(["eval", str(tmp_path / "model"), "--dataset", "jsonl", "--annotations", str(tmp_path / "data"),
                 "--device", "cpu", "--mixed-precision", "bf16", "--save-similarity", str(saved)]) == 0
    torch.testing.assert_close(torch.load(saved)["similarity"], bf16.similarity, rtol=0.05, atol=0.05)


def test_eval_cli_two_stage_eercf(tmp_path):
    """`tvr eval --rerank-top-k K` on a saved EERCF model: the top-k is taken over the whole gallery even when the
    harness scores texts in blocks, so the matrix equals `similarity(all texts, all videos, rerank_top_k=K)`."""
    from tvr import EERCFConfig, EERCFModel
    from tvr.cli import main

    _, processor, dataset = make_tiny_clip4clip(tmp_path, num_videos=6)
    text = dict(vocab_size=len(processor.tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=1, max_position_embeddings=8, bos_token_id=processor.tokenizer.bos_token_id,
                eos_token_id=processor.tokenizer.eos_token_id, pad_token_id=0, projection_dim=32)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=1, image_size=16,
                  patch_size=8, projection_dim=32)
    torch.manual_seed(0)
    model = EERCFModel(EERCFConfig(text_config=text, vision_config=vision, projection_dim=32, max_frames=4,
                                   max_words=8, rerank_top_k=2, patch_embeds_dtype="float32")).eval()
    model.save_pretrained(tmp_path / "eercf")
    processor.save_pretrained(tmp_path / "eercf")

    inputs = processor(text=list(dataset["caption"]), videos=list(dataset["video_path"]), return_tensors="pt")
    with torch.no_grad():
        texts = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        videos = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        coarse = model.similarity(texts, videos, rerank_top_k=0)
        two_stage = model.similarity(texts, videos, rerank_top_k=2)
    assert (two_stage > 50).sum(dim=1).eq(2).all()  # exactly the top 2 of each row were re-scored (+100)

    for top_k, expected in (("2", two_stage), ("0", coarse)):
        saved = tmp_path / f"sim_{top_k}.pt"
        code = main(["eval", str(tmp_path / "eercf"), "--dataset", "jsonl", "--annotations", str(tmp_path / "data"),
                     "--batch-size", "4", "--block-size", "2", "--device", "cpu", "--rerank-top-k", top_k,
                     "--save-similarity", str(saved), "--output", str(tmp_path / f"results_{top_k}.json")])
        assert code == 0
        torch.testing.assert_close(torch.load(saved)["similarity"], expected, rtol=1e-5, atol=1e-4)
