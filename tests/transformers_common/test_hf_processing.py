"""transformers' `ProcessorTesterMixin` (from the installed version's sdist) on `TVRProcessor`: a tokenizer and a
`TVRVideoProcessor` behind one call."""

import unittest

import pytest

common = pytest.importorskip(
    "transformers_tests.test_processing_common",
    reason="transformers' common tests are not fetched: run `make test` (or tests/transformers_common/"
    "fetch_transformers_tests.py)",
)

from tvr import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer  # noqa: E402

CORPUS = ["lower newer", "upper older", "a dog runs on the beach", "a man is cooking"] * 4


class TVRProcessorTest(common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = TVRProcessor

    @classmethod
    def _setup_tokenizer(cls):
        return train_clip_tokenizer(CORPUS, vocab_size=600)

    @classmethod
    def _setup_video_processor(cls):
        return TVRVideoProcessor(size=18, crop_size=18, max_frames=8)

    @staticmethod
    def prepare_processor_dict():
        # A call's default max_length is the processor's max_words, which `_merge_kwargs` returns (the processor's
        # `text_kwargs`): it differs here from the tokenizer's model_max_length (77) on purpose. The mixin compares ids
        # with the tokenizer's: "max_length" pads with the tokenizer's pad id, "clip4clip" (the seeds' layout) writes
        # id 0 at the padded positions instead, which tests/test_processor.py checks.
        return {"max_words": 20, "text_padding": "max_length"}
