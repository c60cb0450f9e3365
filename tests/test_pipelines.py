"""The ``video-text-retrieval`` and ``zero-shot-video-classification`` pipelines on every tvr method (tiny random
models, real synthetic videos): scores equal the model's own ``score_gallery`` on the same inputs, ranks exact;
batching, dtype, device, index search and input errors."""

import numpy as np
import pytest
import torch
from transformers import pipeline

import tvr
from model_testers import model_testers, tiny_config_options, tiny_text_config, tiny_vision_config
from tvr.data import make_synthetic_dataset
from tvr.pipelines import VideoTextRetrievalPipeline, ZeroShotVideoClassificationPipeline
from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
from tvr.retrieval import VideoIndex

NUM_VIDEOS = 5
MAX_WORDS = 16
LABELS = ["red square", "blue circle", "green triangle"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """``(captions, video paths, processor)``: synthetic videos and a processor whose tokenizer knows the captions."""
    root = tmp_path_factory.mktemp("corpus")
    dataset = make_synthetic_dataset(root / "data", NUM_VIDEOS, size=32, fps=4, duration=4.0, num_events=2,
                                     progress=False)
    tokenizer = train_clip_tokenizer(list(dataset["caption"]), root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(TVRVideoProcessor(size=16, crop_size=16, max_frames=4), tokenizer, max_words=MAX_WORDS)
    return list(dataset["caption"]), list(dataset["video_path"]), processor


def method_configs(tokenizer) -> dict:
    """A tiny config of every tvr method (each tester of ``model_testers``, plus InternVideo) for this tokenizer."""
    text_config = tiny_text_config(vocab_size=len(tokenizer), max_position_embeddings=MAX_WORDS,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    configs = {
        name: tester.model_class.config_class(
            **tiny_config_options(**{**tester.config_overrides, "text_config": text_config, "max_words": MAX_WORDS}))
        for name, tester in model_testers().items()
    }
    configs["internvideo"] = tvr.InternVideoConfig(
        text_config=text_config, vision_config=tiny_vision_config(num_hidden_layers=3), extractor_layers=[1, 2],
        projection_dim=32, max_frames=4, max_words=MAX_WORDS)
    return configs


METHODS = sorted(set(model_testers()) | {"internvideo"})


@pytest.fixture(scope="module")
def saved_models(corpus, tmp_path_factory):
    """``{method: (folder, model)}``: each tiny model saved with the processor (InternVideo's zero-init branch made
    non-trivial)."""
    _, _, processor = corpus
    models = {}
    for name, config in method_configs(processor.tokenizer).items():
        torch.manual_seed(0)
        model = tvr.METHODS[config.model_type].model_class(config).eval()
        if name == "internvideo":
            with torch.no_grad():
                for parameter in model.temporal.parameters():
                    parameter.add_(0.3 * torch.randn_like(parameter))
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        models[name] = (folder, model)
    return models


def gallery_scores(model, processor, texts, videos) -> torch.Tensor:
    """What the pipelines must return: ``model.score_gallery`` of every text against every video, all at once."""
    inputs = processor(text=texts, videos=videos, return_tensors="pt")
    with torch.no_grad():
        text_encoding = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video_encoding = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        return model.score_gallery(text_encoding, video_encoding)


def assert_ranking(results, expected_row: torch.Tensor, key: str, names) -> None:
    """``results`` are ``expected_row`` sorted best first: same order, same scores."""
    order = torch.argsort(expected_row, descending=True, stable=True).tolist()
    assert [result["index"] for result in results] == order
    assert [result[key] for result in results] == [names[i] for i in order]
    np.testing.assert_allclose([result["score"] for result in results], expected_row[order].numpy(), atol=1e-5,
                               rtol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_retrieval_equals_the_models_gallery_scores(method, corpus, saved_models):
    captions, paths, processor = corpus
    folder, model = saved_models[method]
    retriever = pipeline("video-text-retrieval", model=str(folder), device="cpu", batch_size=2)
    assert isinstance(retriever, VideoTextRetrievalPipeline)
    expected = gallery_scores(model, processor, captions, paths)

    batched = retriever(captions, videos=paths)  # 2 videos / captions per forward pass
    assert len(batched) == len(captions)
    for row, results in enumerate(batched):
        assert_ranking(results, expected[row], "video", paths)
    # one caption: one list; the call's batch_size wins. (EMCL's EM couples the texts scored together, so the
    # expected scores are those of this caption alone.)
    single = retriever(captions[1], videos=paths, batch_size=3)
    assert_ranking(single, gallery_scores(model, processor, captions[1:2], paths)[0], "video", paths)
    top_two = retriever(captions[1], videos=paths, top_k=2)
    assert [result["index"] for result in top_two] == [result["index"] for result in single[:2]]

    for column, results in enumerate(retriever(videos=paths, texts=captions)):  # v2t: the same matrix, transposed
        assert_ranking(results, expected[:, column], "text", captions)
    one_video = gallery_scores(model, processor, captions, paths[2:3])[:, 0]
    assert_ranking(retriever(videos=paths[2], texts=captions), one_video, "text", captions)


@pytest.mark.parametrize("method", METHODS)
def test_zero_shot_classification_is_the_softmax_of_the_gallery_scores(method, corpus, saved_models):
    _, paths, processor = corpus
    folder, model = saved_models[method]
    classifier = pipeline("zero-shot-video-classification", model=str(folder), device="cpu")
    assert isinstance(classifier, ZeroShotVideoClassificationPipeline)
    template = "a video of a {}."
    logits = gallery_scores(model, processor, [template.format(label) for label in LABELS], paths).t()
    probabilities = logits.softmax(dim=-1)
    results = classifier(paths, candidate_labels=LABELS, hypothesis_template=template, batch_size=2)
    for row, labels in enumerate(results):
        order = torch.argsort(probabilities[row], descending=True, stable=True).tolist()
        assert [label["label"] for label in labels] == [LABELS[i] for i in order]
        np.testing.assert_allclose([label["score"] for label in labels], probabilities[row, order].numpy(),
                                   atol=1e-5)
        assert sum(label["score"] for label in labels) == pytest.approx(1.0, abs=1e-5)
    one = classifier(paths[0], candidate_labels=LABELS, hypothesis_template=template)  # one video: one list
    expected = gallery_scores(model, processor, [template.format(label) for label in LABELS], paths[:1])[:, 0]
    assert [label["label"] for label in one] == [LABELS[i] for i in expected.argsort(descending=True).tolist()]
    np.testing.assert_allclose([label["score"] for label in one], expected.softmax(-1).sort(descending=True).values,
                               atol=1e-5)
    assert classifier(paths[0], candidate_labels=LABELS, hypothesis_template=template, top_k=1) == one[:1]


@pytest.mark.parametrize("method", METHODS)
def test_index_search_through_the_pipeline(method, corpus, saved_models, tmp_path):
    captions, paths, processor = corpus
    folder, model = saved_models[method]
    index = VideoIndex.build(model, processor, paths, batch_size=2, model_dir=folder, progress=False)
    index.save(tmp_path / "index")
    retriever = pipeline("video-text-retrieval", model=str(folder), device="cpu")

    # default: the model re-scores FAISS's candidates (here the whole gallery) as it scores a gallery, one query at a
    # time (EMCL's EM couples the queries scored together: compare with one query at a time)
    found = retriever(captions[:2], index=tmp_path / "index", top_k=3)
    direct = [retriever(caption, videos=paths, top_k=3) for caption in captions[:2]]
    for results, expected in zip(found, direct):
        assert [result["video"] for result in results] == [result["video"] for result in expected]
        assert [result["index"] for result in results] == [result["index"] for result in expected]
        np.testing.assert_allclose([r["score"] for r in results], [r["score"] for r in expected], atol=1e-5)
    # rerank_top_k=0: FAISS's inner products, as VideoIndex.search gives them
    plain = retriever(captions[0], index=str(tmp_path / "index"), top_k=4, rerank_top_k=0)
    assert [(r["video"], pytest.approx(r["score"], abs=1e-6)) for r in plain] == [
        tuple(result) for result in index.search(captions[0], top_k=4, rerank_top_k=0)]


def test_dtype_device_and_model_objects(corpus, saved_models):
    captions, paths, processor = corpus
    folder, model = saved_models["clip4clip_seqTransf"]
    retriever = pipeline("video-text-retrieval", model=str(folder), device="cpu", dtype=torch.bfloat16)
    assert retriever.model.dtype == torch.bfloat16 and retriever.device == torch.device("cpu")
    results = retriever(captions[0], videos=paths)
    assert all(isinstance(result["score"], float) for result in results)
    expected = gallery_scores(model, processor, captions[:1], paths)[0]
    np.testing.assert_allclose(sorted(r["score"] for r in results), sorted(expected.tolist()), atol=0.1)

    from_objects = pipeline("video-text-retrieval", model=model, processor=processor, device=-1)
    assert from_objects.device == torch.device("cpu")
    assert_ranking(from_objects(captions[0], videos=paths), expected, "video", paths)


def test_frame_arrays_are_named_by_position(corpus, saved_models):
    captions, paths, processor = corpus
    folder, model = saved_models["clip4clip_meanP"]
    retriever = pipeline("video-text-retrieval", model=str(folder), device="cpu")
    frames = [np.full((4, 32, 32, 3), value, dtype=np.uint8) for value in (0, 128, 255)]
    results = retriever(captions[0], videos=frames)
    assert sorted(result["video"] for result in results) == [0, 1, 2]


def test_bad_inputs_are_named(corpus, saved_models, tmp_path):
    captions, paths, processor = corpus
    folder, _ = saved_models["clip4clip_meanP"]
    retriever = pipeline("video-text-retrieval", model=str(folder), device="cpu")
    with pytest.raises(ValueError, match="exactly one gallery"):
        retriever(captions[0])
    with pytest.raises(ValueError, match="not both"):
        retriever(captions[0], videos=paths, texts=captions)
    with pytest.raises(ValueError, match="video-to-text"):
        retriever(texts=captions)
    with pytest.raises(ValueError, match="top_k"):
        retriever(captions[0], videos=paths, top_k=0)
    with pytest.raises(ValueError, match="non-empty list of strings"):
        retriever([], videos=paths)
    missing = tmp_path / "missing.mp4"
    with pytest.raises(Exception, match="missing.mp4"):
        retriever(captions[0], videos=[paths[0], str(missing)])
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(Exception, match="junk.mp4"):
        retriever(captions[0], videos=[str(junk)])
    with pytest.raises(FileNotFoundError, match="not an index folder"):
        retriever(captions[0], index=tmp_path)
    classifier = pipeline("zero-shot-video-classification", model=str(folder), device="cpu")
    with pytest.raises(ValueError, match="candidate_labels"):
        classifier(paths[0])
    for template in ("no placeholder", "{} and {}", "{label}", "a {"):  # before: "{} and {}" -> bare IndexError
        with pytest.raises(ValueError, match=f"hypothesis_template must contain '{{}}' exactly once.*got {template!r}"):
            classifier(paths[0], candidate_labels=LABELS, hypothesis_template=template)
    assert len(classifier(paths[0], candidate_labels=LABELS, hypothesis_template="{{x}} {}")) == len(LABELS)


def test_a_model_without_the_contract_is_refused(corpus):
    from transformers import CLIPConfig, CLIPModel

    _, _, processor = corpus
    with pytest.raises(ValueError, match="needs a tvr retrieval model: the model is a 'clip' model.*image-text model.*"
                                         "from_image_text_model"):
        VideoTextRetrievalPipeline(model=CLIPModel(CLIPConfig()), processor=processor, device="cpu")
