"""What an index and its partial shards were built from (issue 23 items 1-2, 8): the model weights' and every
video's fingerprint are recorded; a resume re-encodes the videos changed since and starts over for other weights;
loading against other weights names both fingerprints; damaged shard files are named."""

import json
import shutil

import pytest
import torch

from test_retrieval import corpus, saved_model, tiny_model  # noqa: F401  (fixtures)
from tvr.cli import main
from tvr.retrieval import VideoIndex, list_video_files, read_shards
from tvr.retrieval.index import load_model_and_processor, model_weights_fingerprint
from tvr.retrieval.shards import encode_shards
from tvr.utils.fingerprint import FingerprintMismatch, file_fingerprint, weights_fingerprint


@pytest.fixture
def videos(corpus, tmp_path):  # noqa: F811
    """A copy of the corpus videos the test may rewrite."""
    shutil.copytree(corpus[2], tmp_path / "videos")
    return list_video_files(tmp_path / "videos")


def interrupted_run(model_dir, paths, partial):
    """What a `tvr index MODEL_DIR` killed halfway leaves: shard 1 (videos 2 and 3 of 6) finished (process 1 of 2);
    returns the model it encoded with."""
    model, processor = load_model_and_processor(model_dir, "cpu")
    assert encode_shards(model, processor, paths, partial, shard_size=2, rank=1, world_size=2, progress=False,
                         weights=model_weights_fingerprint(model_dir)) == [1]
    return model


def test_a_resume_re_encodes_the_videos_changed_since(corpus, saved_model, videos, tmp_path, capsys):  # noqa: F811
    _, processor, _ = corpus
    model_dir, model = saved_model
    out, partial = tmp_path / "my.index", tmp_path / "my.index.partial"
    interrupted_run(model_dir, videos, partial)
    # between the kill and the restart a finished video is rewritten (its mtime kept: `cp -p`)
    shutil.copy2(videos[0], videos[3])
    assert main(["index", str(model_dir), str(tmp_path / "videos"), str(out), "--device", "cpu", "--batch-size",
                 "2"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0] == (f"resume folder '{partial}': 1 video(s) changed since they were encoded (first: {videos[3]}): "
                       "encoding their shards again")
    assert said[1].startswith("indexed 6 videos")  # the weights are the same: no start over
    index = VideoIndex.load(out, device="cpu")
    fresh = VideoIndex.build(model, processor, videos, progress=False)
    assert index.paths == fresh.paths
    # before: the old encoding of the rewritten video was kept
    torch.testing.assert_close(index.encoding.video_embeds, fresh.encoding.video_embeds)
    torch.testing.assert_close(index.encoding.video_embeds[3], index.encoding.video_embeds[0])
    assert index.video_fingerprints == {path: file_fingerprint(path) for path in videos}
    assert index.weights == weights_fingerprint(model_dir)
    assert not partial.exists()


def test_a_resume_with_other_weights_starts_over_and_says_so(corpus, saved_model, videos, tmp_path,  # noqa: F811
                                                             capsys):
    _, processor, _ = corpus
    model_dir, _ = saved_model
    new_dir = tmp_path / "model"
    shutil.copytree(model_dir, new_dir)
    old_weights = model_weights_fingerprint(new_dir)
    interrupted_run(new_dir, videos, tmp_path / "my.index.partial")
    new_model = tiny_model(processor, "seqTransf")  # retrained in place: same config, other weights
    next(new_model.temporal.parameters()).data += 0.5
    new_model.save_pretrained(new_dir)
    assert main(["index", str(new_dir), str(tmp_path / "videos"), str(tmp_path / "my.index"), "--device", "cpu",
                 "--batch-size", "2"]) == 0
    said = capsys.readouterr().out
    assert (f"its shards were encoded by other model weights ({old_weights} then, {weights_fingerprint(new_dir)} "
            "now): encoding all videos again") in said
    index = VideoIndex.load(tmp_path / "my.index", device="cpu")
    # before: half the index came from the old weights
    torch.testing.assert_close(index.encoding.video_embeds,
                               VideoIndex.build(new_model, processor, videos, progress=False).encoding.video_embeds)


def test_loading_with_changed_weights_names_both_fingerprints(corpus, saved_model, tmp_path):  # noqa: F811
    dataset, processor, video_dir = corpus
    model_dir, _ = saved_model
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    index = VideoIndex.from_model_dir(folder, video_dir, device="cpu", progress=False)
    index.save(tmp_path / "index")
    recorded = weights_fingerprint(folder)
    assert json.loads((tmp_path / "index" / "index_config.json").read_text())["weights"] == recorded
    retrained = tiny_model(processor, "seqTransf")
    next(retrained.temporal.parameters()).data += 0.5
    retrained.save_pretrained(folder)
    with pytest.raises(FingerprintMismatch, match=f"built from {recorded}, now {weights_fingerprint(folder)}; "
                                                  r"rebuild the index with `tvr index`, or .*allow_model_change=True"):
        VideoIndex.load(tmp_path / "index", device="cpu")
    # a model object loaded from that folder is checked the same way (the pipeline and the app pass one)
    from transformers import AutoModel

    with pytest.raises(FingerprintMismatch):
        VideoIndex.load(tmp_path / "index", model=AutoModel.from_pretrained(folder), processor=processor)
    loaded = VideoIndex.load(tmp_path / "index", device="cpu", allow_model_change=True)
    assert len(loaded.search(dataset[0]["caption"], top_k=2)) == 2


def test_adapter_folders_fingerprint_their_base_too(tmp_path):
    base, adapter = tmp_path / "run" / "base", tmp_path / "run" / "best"
    base.mkdir(parents=True)
    adapter.mkdir()
    (base / "model.safetensors").write_bytes(b"base weights")
    (base / "config.json").write_text("{}")  # a saved model folder, as resolve_adapter_base expects
    (adapter / "adapter_model.safetensors").write_bytes(b"adapter weights")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    assert model_weights_fingerprint(adapter) == f"{weights_fingerprint(base)}+{weights_fingerprint(adapter)}"
    before = model_weights_fingerprint(adapter)
    (base / "model.safetensors").write_bytes(b"BASE weights")  # a later run rewrote the base
    assert model_weights_fingerprint(adapter) != before
    assert model_weights_fingerprint(tmp_path) is None  # no weights to fingerprint: nothing to check


def test_damaged_shard_files_are_named(corpus, saved_model, videos, tmp_path):  # noqa: F811
    _, processor, _ = corpus
    _, model = saved_model
    partial = tmp_path / "partial"
    encode_shards(model, processor, videos, partial, shard_size=3, progress=False)
    (partial / "shard-000001.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{trunc")
    with pytest.raises(ValueError, match=r"shard-000001.safetensors' is damaged \(.*\); delete it and its .json"):
        read_shards(partial, videos)
    record = partial / "shard-000000.json"
    record.write_text(record.read_text()[:20])
    with pytest.raises(ValueError, match=r"shard-000000.json' is damaged \(.*\); delete it and run `tvr index` again"):
        read_shards(partial, videos)
