"""Annotation readers (``load_annotations``; classification labels: ``load_classification``; moments:
``load_moments``) and the synthetic video-caption generator."""

from .._lazy import lazy_names

# module -> the names it gives the package, each loaded on first use (`tvr eval --help` imports the readers only)
EXPORTS = {
    "classification": ("CLASSIFICATION_READERS", "load_classification"),
    "readers": ("FEATURES", "READERS", "load_activitynet", "load_annotations", "load_didemo", "load_generic",
                "load_lsmdc", "load_msrvtt", "load_msvd", "load_vatex"),
    "moments": ("MOMENT_READERS", "load_charades_sta", "load_didemo_moments", "load_generic_moments", "load_moments"),
    "synthetic": ("Event", "describe", "generate_events", "make_labelled_dataset", "make_moment_dataset",
                  "make_synthetic_dataset", "render_frames", "write_video"),
    "videos": ("index_video_files", "resolve_video_paths"),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names})
