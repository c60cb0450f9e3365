"""Prompt templates for zero-shot classification: class names -> captions, shipped as named sets.

A template holds ``{}`` exactly once, where the class name goes (``"a video of {}."``). ``tvr eval --task
zero-shot-classification --templates NAME``, :func:`tvr.evaluation.zero_shot.evaluate_zero_shot`, the
``zero-shot-video-classification`` pipeline and the app all resolve templates here (:func:`resolve_templates`):
a set's name, a list of templates, or a text file with one template per line.

The sets:

- ``single``: ``"a video of {}."``, the pipeline's and the app's default.
- ``clip-kinetics``: the 28 prompts CLIP's paper used for Kinetics-700 (``a photo / video / example /
  demonstration of {}`` and ``... of a person {}``, ``... using / doing / during / performing / practicing {}``).
- ``clip-ucf101``: CLIP's 48 prompts for UCF-101 (the same nouns and verbs, ``a`` or ``the person``).
- ``internvideo``: the 16 prompts InternVideo's zero-shot Kinetics evaluation ensembles (``prompt_type='all'`` of its
  ``text_prompt``, ActionCLIP's list; X-CLIP's code carries the same list); ``actionclip`` is the same set.
- ``internvideo-single``: ``"A video of {}"``, InternVideo's ``prompt_type='single'``.
- ``tvr-synthetic``: one caption per action of tvr's synthetic videos (``"a {} moves left"``, ...), for the
  labelled synthetic set whose class is a shape or colour (:func:`tvr.data.synthetic.make_labelled_dataset`).
"""

from __future__ import annotations

import os
import string
from typing import Sequence

from ..utils.values import did_you_mean

_NOUNS = ("photo", "video", "example", "demonstration")
_VERBS = ("", "using ", "doing ", "during ", "performing ", "practicing ")
_INTERNVIDEO = [
    "a photo of action {}", "a picture of action {}", "Human action of {}", "{}, an action", "{} this is an action",
    "{}, a video of action", "Playing action of {}", "{}", "Playing a kind of action, {}",
    "Doing a kind of action, {}", "Look, the human is {}", "Can you recognize the action of {}?",
    "Video classification of {}", "A video of {}", "The man is {}", "The woman is {}",
]
_SYNTHETIC_ACTIONS = ("moves left", "moves right", "moves up", "moves down", "appears", "disappears")

#: name -> templates; each holds ``{}`` once
TEMPLATE_SETS: dict[str, list[str]] = {
    "single": ["a video of {}."],
    "clip-kinetics": [f"a {noun} of {person}{verb}{{}}." for noun in _NOUNS
                      for person, verbs in (("", ("",)), ("a person ", _VERBS)) for verb in verbs],
    "clip-ucf101": [f"a {noun} of {article} person {verb}{{}}." for verb in _VERBS for article in ("a", "the")
                    for noun in _NOUNS],
    "internvideo": _INTERNVIDEO,
    "actionclip": _INTERNVIDEO,
    "internvideo-single": ["A video of {}"],
    "tvr-synthetic": [f"a {{}} {action}" for action in _SYNTHETIC_ACTIONS],
}
DEFAULT_TEMPLATES = "single"


def check_template(template: str, what: str = "a template") -> str:
    """``template`` if it puts a class name in exactly one place (one ``{}``); else a ``ValueError`` naming it and
    ``what`` it is (not the bare ``IndexError`` / ``KeyError`` of ``str.format``)."""
    fields = []
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except (ValueError, TypeError):  # an unmatched brace, or not a string
        pass
    if not isinstance(template, str) or fields not in ([""], ["0"]):
        raise ValueError(f"{what} must contain '{{}}' exactly once, where the label goes (write other braces as "
                         f"'{{{{' and '}}}}'), got {template!r}; e.g. 'a video of {{}}.'")
    return template


def resolve_templates(templates: str | os.PathLike | Sequence[str] | None = None) -> list[str]:
    """The templates of a set's name (:data:`TEMPLATE_SETS`), of a text file (one template a line, blank lines and
    lines starting with ``#`` skipped) or of a list; ``None``: the ``single`` set. Each is checked
    (:func:`check_template`).

    Example::

        resolve_templates("clip-kinetics")[:2]    # ['a photo of {}.', 'a photo of a person {}.']
        resolve_templates(["{}", "a clip of {}"])

    Raises:
        ValueError: an unknown set name that is not a file (with the closest name), an empty list or file, a template
            without exactly one ``{}`` (naming the file and line).
    """
    if templates is None:
        return list(TEMPLATE_SETS[DEFAULT_TEMPLATES])
    if isinstance(templates, (str, os.PathLike)):
        name = os.fspath(templates)
        if name in TEMPLATE_SETS:
            return list(TEMPLATE_SETS[name])
        if not os.path.isfile(name):
            raise ValueError(f"templates {name!r}: neither a template set ({', '.join(TEMPLATE_SETS)}) nor a file "
                             f"of templates (one a line, with '{{}}'){did_you_mean(name, TEMPLATE_SETS)}")
        with open(name, encoding="utf-8-sig") as file:
            lines = [(number, line.rstrip("\r\n")) for number, line in enumerate(file, 1)]
        lines = [(number, line) for number, line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not lines:
            raise ValueError(f"templates file {name!r} holds no template; write one a line, e.g. 'a video of {{}}.'")
        for number, line in lines:
            try:
                check_template(line)
            except ValueError as error:
                raise ValueError(f"{name} line {number}: {error}") from None
        return [line for _, line in lines]
    templates = list(templates)
    if not templates:
        raise ValueError("templates is an empty list; give at least one template with '{}', e.g. 'a video of {}.'")
    return [check_template(template) for template in templates]


def templates_label(templates: str | os.PathLike | Sequence[str] | None) -> str | list[str]:
    """How results name the templates used: a set's name, else the templates themselves."""
    if templates is None:
        return DEFAULT_TEMPLATES
    if isinstance(templates, str) and templates in TEMPLATE_SETS:
        return templates
    return resolve_templates(templates)


__all__ = ["DEFAULT_TEMPLATES", "TEMPLATE_SETS", "check_template", "resolve_templates", "templates_label"]
