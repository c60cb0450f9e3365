"""Stub: transformers' sdist ships `tests/test_modeling_common.py` without its `exporters` sub-package; tvr's models
are not exported with torch.export, so the mixin `ModelTesterMixin` inherits from is empty here."""


class ExportTesterMixin:
    pass
