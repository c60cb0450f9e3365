"""Text-video retrieval metrics as an ``evaluate`` module.

Load it from its path (``tvr.evaluation.RETRIEVAL_METRICS_SCRIPT``)::

    import evaluate
    from tvr.evaluation import RETRIEVAL_METRICS_SCRIPT

    metric = evaluate.load(RETRIEVAL_METRICS_SCRIPT)
    metric.compute(predictions=sim.tolist(), references=text_to_video)

evaluate copies this script alone into its cache and reads its import lines to check dependencies, so the
imports below are one per line and absolute: the metric math lives in ``tvr.evaluation.metrics``.
"""

import datasets
import evaluate
import numpy

from tvr.evaluation.metrics import compute_retrieval_metrics

_DESCRIPTION = """
Recall at 1, 5 and 10 (percent), median and mean rank (1-based) for text-to-video (t2v) and video-to-text (v2t)
retrieval. Each prediction is one text's scores over all videos (one row of the similarity matrix); each
reference is the index of that text's video. Several texts may share a video (multi-caption sets); every video
needs at least one text. By default a tie with the ground truth counts against it (ties="pessimistic").
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of num_texts rows, each num_videos scores (higher = more similar).
    references: list of num_texts video indices in [0, num_videos).
    ties: "pessimistic" (default; equal scores rank above the ground truth) or "optimistic".
Returns:
    dict with t2v_R@1, t2v_R@5, t2v_R@10, t2v_MedR, t2v_MeanR and the same keys for v2t_.
Example:
    >>> metric = evaluate.load(RETRIEVAL_METRICS_SCRIPT)
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1])["t2v_R@1"]
    100.0
"""

_CITATION = """
@inproceedings{luo2021clip4clip,
  title={CLIP4Clip: An Empirical Study of CLIP for End to End Video Clip Retrieval},
  author={Luo, Huaishao and Ji, Lei and Zhong, Ming and Chen, Yang and Lei, Wen and Duan, Nan and Li, Tianrui},
  journal={arXiv preprint arXiv:2104.08860},
  year={2021}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RetrievalMetrics(evaluate.Metric):
    """R@K / MedR / MeanR for text-video retrieval, delegating to ``tvr.evaluation.compute_retrieval_metrics``."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, ties="pessimistic"):
        return compute_retrieval_metrics(
            numpy.asarray(predictions, dtype=numpy.float32), numpy.asarray(references, dtype=numpy.int64), ties
        )
