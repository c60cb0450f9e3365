"""transformers' `ModelTesterMixin` and `ConfigTester` on every tvr model class."""

import unittest

import pytest

common = pytest.importorskip(
    "transformers_tests.test_modeling_common",
    reason="transformers' common tests are not fetched: run `make test` (or tests/transformers_common/"
    "fetch_transformers_tests.py)",
)
from model_testers import tiny_clip4clip_config, tiny_inputs  # noqa: E402
from transformers_tests.test_configuration_common import ConfigTester  # noqa: E402

from tvr import CLIP4ClipConfig, CLIP4ClipModel  # noqa: E402


class Tester:
    def __init__(self, parent, **options):
        self.parent = parent
        self.options = options
        self.batch_size = 3
        self.is_training = True

    def get_config(self):
        return tiny_clip4clip_config(**self.options)

    def prepare_config_and_inputs_for_common(self):
        return self.get_config(), tiny_inputs(batch_size=self.batch_size)


class CLIP4ClipMeanPTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (CLIP4ClipModel,)
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = Tester(self, sim_header="meanP")
        self.config_tester = ConfigTester(self, config_class=CLIP4ClipConfig, has_text_modality=False)

    def test_config(self):
        self.config_tester.run_common_tests()
