"""transformers' `ModelTesterMixin` and `ConfigTester` (from the installed version's sdist) on every tvr model class,
through the same testers tvr's own tests use (`model_testers.model_testers()`).

Skipped, each with its reason, only what does not apply to a dual-encoder retrieval model, as transformers' own
CLIP / X-CLIP tests skip it."""

import unittest

import pytest

common = pytest.importorskip(
    "transformers_tests.test_modeling_common",
    reason="transformers' common tests are not fetched: run `make test` (or tests/transformers_common/"
    "fetch_transformers_tests.py)",
)
from transformers_tests.test_configuration_common import ConfigTester  # noqa: E402

from model_testers import RetrievalModelTester, model_testers  # noqa: E402

TESTERS = model_testers()


class RetrievalModelTest(common.ModelTesterMixin):
    """The mixin, configured for a tvr model; subclasses set `tester`."""

    tester: RetrievalModelTester
    additional_model_inputs = ["pixel_values_videos", "video_mask"]  # the main input is input_ids
    test_resize_embeddings = False
    test_attention_outputs = False  # as CLIP: the towers' attentions are checked by test_get_*_features_attentions
    _is_composite = True

    def setUp(self):
        self.model_tester = self.tester
        self.all_model_classes = (self.tester.model_class,)
        # the method's own fields on default towers; the sub-configs are the towers' (transformers tests them)
        fields = {"max_frames": 4, "max_words": 8}
        fields.update({k: v for k, v in self.tester.config_overrides.items() if not k.endswith("_config")})
        self.config_tester = ConfigTester(
            self, config_class=self.tester.model_class.config_class, has_text_modality=False, **fields
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(reason="a dual encoder has no single `hidden_states`: the towers' are in text_model_output / "
                          "vision_model_output, tested by test_get_text/video_features_hidden_states (as CLIP)")
    def test_hidden_states_output(self):
        pass

    @unittest.skip(reason="as CLIP: the towers' hidden states and attentions are tested through get_*_features")
    def test_retain_grad_hidden_states_attentions(self):
        pass

    @unittest.skip(reason="as CLIP: inputs_embeds is a text-tower input, tested by transformers' CLIP text tests")
    def test_inputs_embeds(self):
        pass


EM_COUPLING = (
    "EMCL's EM couples every row of a block (by design: scores depend on what is scored together), so a change in "
    "one row moves every score"
)


def _emcl_skips() -> dict:
    """EMCL: batching equivalence cannot hold, and the eager-vs-SDPA comparisons with a left-padded text row (pooled
    at a fully masked position, where the two kernels legitimately differ) mask that row only, not the rows the EM
    couples it to."""
    skips = {"test_batching_equivalence": unittest.skip(reason=EM_COUPLING)(lambda self: None)}
    for name in dir(common.ModelTesterMixin):
        if name.startswith("test_eager_matches_sdpa_inference_") and "pad_left" in name and "no_attn_mask" not in name:
            skips[name] = unittest.skip(reason=EM_COUPLING + "; the padded row's difference reaches them")(
                lambda self: None
            )
    return skips


NO_FRAME_LAYOUT = (
    "DAVRL's vision forward runs global tokens with per-frame, then per-segment units through every layer: it has "
    "no per-frame hidden states, attentions or last_hidden_state to return"
)


def _dual_attention_skips() -> dict:
    names = ["test_get_video_features_hidden_states", "test_get_video_features_attentions"]
    names += [name for name in dir(common.ModelTesterMixin) if name.startswith("test_get_video_features_output")]
    return {name: unittest.skip(reason=NO_FRAME_LAYOUT)(lambda self: None) for name in names}


def _test_class(name: str, tester: RetrievalModelTester) -> type:
    extra = {"emcl": _emcl_skips, "dual_attention": _dual_attention_skips}.get(name, dict)()
    return type(f"Test_{name}", (RetrievalModelTest, unittest.TestCase), {"tester": tester, **extra})


for _name, _tester in TESTERS.items():
    globals()[f"Test_{_name}"] = _test_class(_name, _tester)
