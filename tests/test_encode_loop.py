"""One decode -> skip bad videos -> encode loop (``tvr.processing.encode_loop``) behind ``tvr eval``, ``tvr index``
(whole or in shards) and the pipelines, and ``evaluate_retrieval``'s options object."""

import ast
import dataclasses
import warnings
from pathlib import Path

import datasets
import pytest
import torch

import tvr
from test_evaluation_harness import ROWS, FakeModel, FakeProcessor, make_tiny_clip4clip
from tvr.evaluation.harness import EvaluationOptions, evaluate_retrieval
from tvr.modeling.outputs import concat_encodings
from tvr.processing.encode_loop import encode_video_batches
from tvr.retrieval import VideoIndex, read_shards
from tvr.retrieval.shards import encode_shards

PACKAGE = Path(tvr.__file__).parent


def bad_videos(folder: Path) -> list[str]:
    """Two files no decoder can read: junk bytes and an empty file."""
    junk, empty = folder / "junk.mp4", folder / "empty.mp4"
    junk.write_bytes(b"not a video" * 100)
    empty.write_bytes(b"")
    return [str(junk), str(empty)]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A tiny CLIP4Clip, its processor, its 5 good videos and a dataset / path list with 2 bad ones among them."""
    folder = tmp_path_factory.mktemp("loop")
    model, processor, dataset = make_tiny_clip4clip(folder)
    bad = bad_videos(folder / "data")
    rows = dataset.to_list()
    mixed_rows = (rows[:2] + [{**rows[0], "video_id": "junk", "video_path": bad[0]}] + rows[2:]
                  + [{**rows[1], "video_id": "empty", "video_path": bad[1]}])
    return model, processor, dataset, datasets.Dataset.from_list(mixed_rows), bad


def test_the_loop_keeps_positions_and_equals_encoding_the_good_videos_alone(mixed):
    model, processor, dataset, mixed_set, bad = mixed
    paths = list(mixed_set["video_path"])  # good, good, junk, good, good, good, empty
    model.train()
    encoded = encode_video_batches(model, processor, paths, batch_size=2)
    assert model.training  # eval while encoding, the caller's mode afterwards
    assert encoded.kept == [0, 1, 3, 4, 5]
    assert list(encoded.failed) == bad and "not a video file" in encoded.failed[bad[0]]
    assert len(encoded.encodings) == 3  # batches [0, 1], [2 bad, 3], [4, 5], [6 bad]: the last one left nothing
    model.eval()
    good = processor(videos=list(dataset["video_path"]), return_tensors="pt")
    with torch.no_grad():
        expected = model.encode_video(good["pixel_values_videos"], good["video_mask"])
    torch.testing.assert_close(concat_encodings(encoded.encodings).video_embeds, expected.video_embeds)
    with pytest.raises(ValueError, match="junk.mp4"):
        encode_video_batches(model, processor, paths, batch_size=2, on_bad_video="error")


def test_eval_index_and_shards_skip_and_report_a_bad_video_identically(mixed, tmp_path):
    model, processor, _, mixed_set, bad = mixed
    paths = list(dict.fromkeys(mixed_set["video_path"]))
    with pytest.warns(UserWarning) as eval_warnings:
        evaluation = evaluate_retrieval(model, processor, mixed_set, batch_size=2, progress=False)
    with pytest.warns(UserWarning) as index_warnings:
        index = VideoIndex.build(model, processor, paths, batch_size=2, progress=False)
    encode_shards(model, processor, paths, tmp_path / "shards", shard_size=4, batch_size=2, progress=False)
    shard_encoding, shard_paths, shard_failed = read_shards(tmp_path / "shards", paths)

    # the same videos left out, with the same errors, wherever they were met
    assert evaluation.skipped_videos == index.failed == shard_failed
    assert list(index.failed) == bad
    # the same count in the one warning each command gives
    for caught in (eval_warnings, index_warnings):
        assert [str(w.message) for w in caught if "could not be decoded" in str(w.message)][0].startswith(
            "2 of 7 videos could not be decoded")
    # the same videos encoded, to the same encodings
    good = [path for path in paths if path not in bad]
    assert index.paths == shard_paths == good
    assert evaluation.video_ids == [video_id for video_id in dict.fromkeys(mixed_set["video_id"])
                                    if video_id not in ("junk", "empty")]
    torch.testing.assert_close(index.encoding.video_embeds, shard_encoding.video_embeds)

    # "error": the same error, naming the video, from eval, index and the pipelines
    errors = []
    for run in (lambda: evaluate_retrieval(model, processor, mixed_set, progress=False, on_bad_video="error"),
                lambda: VideoIndex.build(model, processor, paths, progress=False, on_bad_video="error")):
        with pytest.raises(ValueError, match="junk.mp4") as raised:
            run()
        errors.append(str(raised.value))
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    from transformers import pipeline

    retriever = pipeline("video-text-retrieval", model=str(tmp_path / "model"), device="cpu")
    with pytest.raises(ValueError, match="junk.mp4") as raised:
        retriever("a caption", videos=paths)
    errors.append(str(raised.value))
    assert len(set(errors)) == 1


def test_options_object_equals_the_keyword_call():
    dataset = datasets.Dataset.from_dict(ROWS)
    keywords = dict(batch_size=2, postprocessing=("dsl",), block_size=4, return_similarity=True, progress=False)
    by_keyword = evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, **keywords)
    options = EvaluationOptions(**keywords)
    by_options = evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, options=options)
    positional = evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, options)
    for result in (by_options, positional):
        assert result.metrics == by_keyword.metrics
        torch.testing.assert_close(result.similarity, by_keyword.similarity)
    # keywords over an options object
    processor = FakeProcessor()
    overridden = evaluate_retrieval(FakeModel(), processor, dataset, options, batch_size=16, return_similarity=False)
    assert overridden.similarity is None and overridden.metrics == by_keyword.metrics
    assert [len(call["videos"]) for call in processor.calls if call["videos"]] == [3]
    assert options.batch_size == 2  # frozen: the call did not change it
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.batch_size = 4


def test_bad_options_are_named():
    dataset = datasets.Dataset.from_dict(ROWS)
    with pytest.raises(TypeError, match="unknown option 'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, batchsize=2)
    with pytest.raises(TypeError, match="options=EvaluationOptions"):
        evaluate_retrieval(FakeModel(), FakeProcessor(), dataset, 16)
    for bad, message in ((dict(batch_size=0), "batch_size must be >= 1"), (dict(num_workers=-1), "num_workers"),
                         (dict(ties="random"), "ties must be one of"), (dict(on_bad_video="ignore"), "on_bad_video"),
                         (dict(mixed_precision="fp8"), "'fp8'"), (dict(postprocessing=("dls",)), "unknown post"),
                         (dict(postprocessing=("qb_norm",)), "needs query_bank")):
        with pytest.raises(ValueError, match=message):
            EvaluationOptions(**bad)


def module_imports(path: Path) -> set[str]:
    """Every module a source file imports, at its top or inside a function, as absolute ``tvr.`` names."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


def test_the_loop_and_the_shards_import_nothing_above_them():
    loop = module_imports(PACKAGE / "processing" / "encode_loop.py")
    assert not {name for name in loop if name.startswith(("tvr.evaluation", "tvr.retrieval", "tvr.pipelines",
                                                          "tvr.data", "tvr.modeling"))}
    # index.py builds on shards.py, never the other way round (not even inside a function)
    assert not {name for name in module_imports(PACKAGE / "retrieval" / "shards.py")
                if name.startswith("tvr.retrieval.index")}
    for module in ("evaluation/harness.py", "retrieval/shards.py", "pipelines/base.py"):
        assert "tvr.processing.encode_loop.encode_video_batches" in module_imports(PACKAGE / module), module
    # an index (a build or an update) encodes through the shards' one call, which runs the loop
    for module in ("retrieval/index.py", "retrieval/updates.py"):
        assert "tvr.retrieval.shards.encode_collection" in module_imports(PACKAGE / module), module


def test_nothing_is_warned_without_bad_videos(mixed):
    model, processor, dataset, _, _ = mixed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_retrieval(model, processor, dataset, batch_size=2, progress=False)
        VideoIndex.build(model, processor, list(dataset["video_path"]), batch_size=2, progress=False)
