"""Stub: the sdist lacks `tests/generation`; tvr's retrieval models do not generate."""


class GenerationTesterMixin:
    pass
