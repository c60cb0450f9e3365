"""Stub for the sdist's missing `tests/utils/test_configuration_utils.py`: keyword arguments every
`PreTrainedConfig` accepts, which `ConfigTester.check_config_arguments_init` sets and reads back."""

config_common_kwargs = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "problem_type": "regression",
}
