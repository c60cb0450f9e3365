"""The tvr Gradio app (``tvr app``) and its Hugging Face Space (``tvr space``).

:class:`RetrievalDemo` (no gradio needed) holds the model, the index and the answers; :mod:`tvr.app.ui` lays them
out with gradio (the optional extra ``app``: ``pip install -e '.[app]'`` in the clone).
"""

from .demo import RetrievalDemo

__all__ = ["RetrievalDemo"]
