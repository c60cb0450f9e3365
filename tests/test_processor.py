"""train_clip_tokenizer and TVRProcessor: CLIP vocabulary layout, CLIP4Clip caption layout, save / load."""

import json
import shutil
import time

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, AutoTokenizer, AutoVideoProcessor, CLIPTokenizer, PretrainedConfig

from tvr.data.synthetic import write_video
from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
from tvr.processing.processing_tvr import TVRProcessorKwargs

CAPTIONS = [
    "a man is playing a guitar on stage",
    "a woman cooks pasta in a small kitchen",
    "two dogs run across a green field",
    "a red car drives down the empty road",
    "children are playing football in the park",
    "a chef slices onions with a sharp knife",
] * 10


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    train_clip_tokenizer(CAPTIONS, folder, vocab_size=600)
    return folder


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return CLIPTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames = np.repeat(np.linspace(0, 255, 60).astype(np.uint8)[:, None, None, None], 48 * 64 * 3, axis=1)
    return write_video(tmp_path_factory.mktemp("video") / "ramp.mp4", frames.reshape(60, 48, 64, 3), fps=10)


def test_trained_tokenizer_has_clips_vocabulary_layout(tokenizer_dir, tokenizer):
    vocab = json.loads((tokenizer_dir / "vocab.json").read_text())
    assert len(vocab) == len(tokenizer) == 600
    # bytes first in CLIP's byte-symbol order, then the same with "</w>", merges, then the two special tokens
    assert vocab["!"] == 0 and vocab["a</w>"] == 320  # as in OpenAI's vocabulary
    assert tokenizer.bos_token_id == vocab["<|startoftext|>"] == 598
    assert tokenizer.eos_token_id == vocab["<|endoftext|>"] == 599 == max(vocab.values())
    merges = (tokenizer_dir / "merges.txt").read_text().splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) - 1 >= 600 - 514
    assert all(len(line.split(" ")) == 2 for line in merges[1:])


def test_trained_tokenizer_round_trips_and_cleans_like_clip(tokenizer):
    ids = tokenizer("a man is playing a guitar").input_ids
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.convert_ids_to_tokens(ids[1:3]) == ["a</w>", "man</w>"]  # whole frequent words, "</w>" ends
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a man is playing a guitar"
    # CLIP lower-cases and collapses whitespace
    assert tokenizer("  A   MAN\tIs\nPlaying ").input_ids == tokenizer("a man is playing").input_ids
    # unseen words fall back to byte symbols and still round-trip
    unseen = tokenizer("zebra 42 über").input_ids
    assert tokenizer.decode(unseen, skip_special_tokens=True) == "zebra 4 2 über"


def test_openai_format_files_alone_load_with_the_standard_loaders(tokenizer_dir, tokenizer, tmp_path):
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, tmp_path / name)  # no tokenizer.json: built from the OpenAI files
    for loaded in (CLIPTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is CLIPTokenizer
        assert loaded("two dogs run across a field").input_ids == tokenizer("two dogs run across a field").input_ids


def test_without_a_folder_the_tokenizer_lives_in_memory(tokenizer):
    in_memory = train_clip_tokenizer(CAPTIONS, vocab_size=600)
    assert in_memory.get_vocab() == tokenizer.get_vocab()
    assert in_memory("a chef slices onions").input_ids == tokenizer("a chef slices onions").input_ids


def test_training_is_quick_and_checks_vocab_size(tmp_path):
    started = time.perf_counter()
    train_clip_tokenizer(CAPTIONS * 20, tmp_path / "quick", vocab_size=1024)
    assert time.perf_counter() - started < 2
    with pytest.raises(ValueError, match="at least 514"):
        train_clip_tokenizer(CAPTIONS, tmp_path / "tiny", vocab_size=300)


def test_text_follows_clip4clip_layout(tokenizer):
    processor = TVRProcessor(TVRVideoProcessor(), tokenizer, max_words=8)
    long_caption = "a chef slices onions with a sharp knife in the kitchen"
    batch = processor(text=[long_caption, "two dogs"], return_tensors="pt")
    bpe = tokenizer(long_caption, add_special_tokens=False).input_ids
    short = tokenizer("two dogs", add_special_tokens=False).input_ids
    start, end = tokenizer.bos_token_id, tokenizer.eos_token_id
    expected = [[start] + bpe[:6] + [end], [start] + short + [end] + [0] * (8 - len(short) - 2)]
    assert batch["input_ids"].tolist() == expected
    assert batch["input_ids"].dtype == torch.int64
    assert batch["attention_mask"].tolist() == [[1] * 8, [1] * (len(short) + 2) + [0] * (8 - len(short) - 2)]
    # the tokenizer's max_length / padding per call; HTML entities unescaped as CLIP's basic_clean does
    assert processor(text="two dogs", max_length=4)["input_ids"] == [[start] + short[:2] + [end]]
    longest = processor(text=["two dogs", long_caption], padding="longest", max_length=32)
    assert [len(ids) for ids in longest["input_ids"]] == [len(bpe) + 2] * 2  # the longest caption's length
    assert longest["input_ids"][0] == expected[1][: len(short) + 2] + [0] * (len(bpe) - len(short))
    assert processor(text="rock &amp;amp; roll")["input_ids"] == processor(text="rock & roll")["input_ids"]


@pytest.mark.parametrize("max_words", [8, 32, 77, 100])
@pytest.mark.parametrize("text_padding", ["max_length", "clip4clip"])
def test_a_call_equals_the_tokenizer_with_the_merged_defaults(tokenizer_dir, max_words, text_padding):
    # the caption length is a default `_merge_kwargs` returns (not an attribute it cannot see), for any max_words
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)  # its own: calling it directly leaves its truncation set
    processor = TVRProcessor(TVRVideoProcessor(), tokenizer, max_words=max_words, text_padding=text_padding)
    merged = processor._merge_kwargs(TVRProcessorKwargs, tokenizer_init_kwargs=tokenizer.init_kwargs)["text_kwargs"]
    assert merged == {"padding": "max_length", "truncation": True, "max_length": max_words}
    captions = ["a chef slices onions with a sharp knife in the kitchen " * 10, "two dogs"]
    expected = tokenizer(captions, **merged)
    actual = processor(text=captions)
    assert actual["attention_mask"] == expected["attention_mask"]
    assert [len(ids) for ids in actual["input_ids"]] == [max_words] * 2
    pad = tokenizer.pad_token_id if text_padding == "max_length" else 0
    assert actual["input_ids"] == [[token if keep else pad for token, keep in zip(ids, mask)]
                                   for ids, mask in zip(expected["input_ids"], expected["attention_mask"])]
    # the call's own max_length still wins, and the processor saves max_words, not the merged defaults
    assert processor(text="two dogs", text_kwargs={"max_length": 6})["input_ids"][0].__len__() == 6
    assert "text_kwargs" not in processor.to_dict()


def test_video_options_pass_through(tokenizer, video):
    processor = TVRProcessor(TVRVideoProcessor(size=32, crop_size=32), tokenizer)
    batch = processor(
        text=["a ramp"], videos=[video], max_frames=3, slice_framepos="head", return_metadata=True, return_tensors="pt"
    )
    assert batch["pixel_values_videos"].shape == (1, 3, 3, 32, 32)
    assert batch["video_mask"].tolist() == [[1, 1, 1]]
    assert batch["video_metadata"][0].frames_indices == [0, 10, 20]
    assert batch["input_ids"].shape == (1, 32)
    with pytest.raises(ValueError, match="needs text, videos or both"):
        processor()


def test_save_and_load_round_trip(tokenizer, video, tmp_path):
    processor = TVRProcessor(
        TVRVideoProcessor(size=40, crop_size=32, max_frames=5, slice_framepos="tail"), tokenizer, max_words=12
    )
    processor.save_pretrained(tmp_path)
    expected = processor(text=["a red car", "a chef"], videos=[video], return_tensors="pt")

    class ProcessingTestConfig(PretrainedConfig):
        model_type = "tvr-processor-test"

    # what tvr does for every model config; it makes both classes findable by the names saved in the folder
    AutoVideoProcessor.register(ProcessingTestConfig, TVRVideoProcessor, exist_ok=True)
    AutoProcessor.register(ProcessingTestConfig, TVRProcessor, exist_ok=True)
    for reloaded in (TVRProcessor.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)):
        assert type(reloaded) is TVRProcessor
        assert reloaded.max_words == 12
        assert reloaded.video_processor.to_dict() == processor.video_processor.to_dict()
        assert reloaded.tokenizer.get_vocab() == tokenizer.get_vocab()
        actual = reloaded(text=["a red car", "a chef"], videos=[video], return_tensors="pt")
        assert actual.keys() == expected.keys()
        for key in expected:
            torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)


def test_a_call_leaves_no_caption_length_in_the_saved_tokenizer(tokenizer_dir, tmp_path):
    # a fast tokenizer keeps the last call's truncation in its backend, which save_pretrained writes out
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    TVRProcessor(TVRVideoProcessor(), tokenizer, max_words=8)(text=["a red car"])
    TVRProcessor(TVRVideoProcessor(), tokenizer, max_words=12).save_pretrained(tmp_path)
    reloaded = TVRProcessor.from_pretrained(tmp_path)
    assert len(reloaded(text=["a red car"])["input_ids"][0]) == 12
