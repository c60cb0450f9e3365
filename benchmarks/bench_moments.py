"""Moment retrieval quality of a trained model on long synthetic videos: window search (``evaluate_moments``) vs the
trivial baselines (the whole video; a random window of the annotated moment's length).

The videos (``tvr.data.make_moment_dataset``): 3-6 consecutive events of 3-8 s each (9-48 s videos), each event one
coloured shape doing one thing, captioned on its own ("a red square moves left"); no two events of a video share a
coloured shape, so each caption names exactly one span. The model: the demo's (``tvr demo --output DIR`` trains it;
use ``DIR/model``), or any saved model. Every ``--windows`` configuration given is evaluated on the same videos, so
window scales can be compared. Two rows explain the numbers: "best window" is the upper bound of window search (for
each caption the window of the set closest to its moment, as if the model always picked it: what the window grid
allows), and the top-1 lengths show which window lengths the model picks against the moments' own lengths.

    tvr demo --output demo_output
    OMP_NUM_THREADS=2 python benchmarks/bench_moments.py demo_output/model --videos 40 --windows 4,8,16 3,4,6,8
"""

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tvr.data import make_moment_dataset
from tvr.evaluation.moments import BASELINES, MomentEvaluationOptions, evaluate_moments, moment_metrics, temporal_iou
from tvr.loading import load_model_and_processor
from tvr.processing.windows import plan_windows

METRICS = ("R@1_IoU0.3", "R@1_IoU0.5", "R@1_IoU0.7", "R@5_IoU0.3", "R@5_IoU0.5", "R@5_IoU0.7", "mIoU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="saved model folder (e.g. demo_output/model)")
    parser.add_argument("--videos", type=int, default=40, help="long synthetic videos")
    parser.add_argument("--seed", type=int, default=0, help="seed of the videos and of the random baseline")
    parser.add_argument("--windows", nargs="+", default=["4,8,16"], help="window scale sets to compare")
    parser.add_argument("--stride", type=float, default=0.5)
    parser.add_argument("--nms-iou", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data", default=None, help="folder for the videos (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        data = Path(args.data or scratch)
        moments = make_moment_dataset(data, args.videos, seed=args.seed, progress=False)
        seconds = sum({row["video_id"]: row["end"] for row in moments}.values())
        print(f"{len(moments)} captioned moments in {args.videos} videos ({seconds / 60:.1f} min of video), "
              f"moments {min(r['end'] - r['start'] for r in moments):g}-{max(r['end'] - r['start'] for r in moments):g} s")
        model, processor = load_model_and_processor(args.model, "cpu")
        results = {}
        for windows in args.windows:
            options = MomentEvaluationOptions(windows=windows, stride=args.stride, nms_iou=args.nms_iou,
                                              batch_size=args.batch_size, seed=args.seed, progress=False)
            started = time.perf_counter()
            result = evaluate_moments(model, processor, moments, options)
            seconds = time.perf_counter() - started
            best = [max(plan_windows(duration, result.windows, args.stride),
                        key=lambda window: temporal_iou([window], [truth])[0, 0])
                    for truth, duration in zip(result.ground_truth, result.durations)]
            picked = collections.Counter(f"{ranked[0][1] - ranked[0][0]:g} s" for ranked in result.predictions)
            results[windows] = dict(result.metrics, num_windows=result.num_windows, seconds=seconds,
                                    **{f"best_window/{key}": value for key, value in moment_metrics(
                                        [[window] for window in best], result.ground_truth).items()},
                                    top1_lengths=dict(sorted(picked.items(), key=lambda item: float(item[0][:-2]))),
                                    moment_lengths=dict(sorted(collections.Counter(
                                        f"{end - start:g} s" for start, end in result.ground_truth).items(),
                                        key=lambda item: float(item[0][:-2]))))

    print(f"\n| moments from | windows (s) | {' | '.join(METRICS)} |\n|" + "---|" * (2 + len(METRICS)))
    for windows, metrics in results.items():
        print(f"| window search | {windows} (stride {args.stride:g}, {metrics['num_windows']} windows, "
              f"{metrics['seconds']:.0f} s) | " + " | ".join(f"{metrics[key]:.1f}" for key in METRICS) + " |")
        print(f"| best window (upper bound) | {windows} | "
              + " | ".join(f"{metrics[f'best_window/{key}']:.1f}" for key in METRICS) + " |")
    first = next(iter(results.values()))
    for name in BASELINES:
        print(f"| {name.replace('_', ' ')} | | " + " | ".join(f"{first[f'{name}/{key}']:.1f}" for key in METRICS)
              + " |")
    for windows, metrics in results.items():
        print(f"\n{windows}: top-1 window lengths {metrics['top1_lengths']}; moment lengths {metrics['moment_lengths']}")
    print(f"({np.mean([m['seconds'] for m in results.values()]):.0f} s per evaluation on this machine)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
