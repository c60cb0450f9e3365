"""Annotation readers (``load_annotations``) and the synthetic video-caption generator."""

from .readers import (
    FEATURES,
    READERS,
    load_activitynet,
    load_annotations,
    load_didemo,
    load_generic,
    load_lsmdc,
    load_msrvtt,
    load_msvd,
    load_vatex,
)
from .synthetic import Event, describe, generate_events, make_synthetic_dataset, render_frames, write_video
from .videos import index_video_files, resolve_video_paths

__all__ = [
    "FEATURES",
    "READERS",
    "Event",
    "describe",
    "generate_events",
    "index_video_files",
    "load_activitynet",
    "load_annotations",
    "load_didemo",
    "load_generic",
    "load_lsmdc",
    "load_msrvtt",
    "load_msvd",
    "load_vatex",
    "make_synthetic_dataset",
    "render_frames",
    "resolve_video_paths",
    "write_video",
]
