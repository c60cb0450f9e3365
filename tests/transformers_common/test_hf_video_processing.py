"""transformers' `VideoProcessingTestMixin` (from the installed version's sdist) on `TVRVideoProcessor`."""

import unittest

import numpy as np
import pytest

common = pytest.importorskip(
    "transformers_tests.test_video_processing_common",
    reason="transformers' common tests are not fetched: run `make test` (or tests/transformers_common/"
    "fetch_transformers_tests.py)",
)

from tvr import TVRVideoProcessor  # noqa: E402


class TVRVideoProcessingTester:
    """Random in-memory videos of 8 frames (each frame counts as one second: no metadata), 20-px shorter side and an
    18-px crop, as transformers' own video processor testers use."""

    def __init__(self, parent, batch_size=5, num_frames=8, num_channels=3, min_resolution=30, max_resolution=40):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.num_channels = num_channels
        self.min_resolution = min_resolution
        self.max_resolution = max_resolution

    def prepare_video_processor_dict(self) -> dict:
        return {
            "do_resize": True,
            "size": {"shortest_edge": 20},
            "do_center_crop": True,
            "crop_size": {"height": 18, "width": 18},
            "do_normalize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "do_convert_rgb": True,
            "max_frames": 8,
        }

    def expected_output_video_shape(self, videos) -> list[int]:
        return [self.num_frames, 3, 18, 18]

    def prepare_video_inputs(self, equal_resolution=False, return_tensors="pil"):
        return common.prepare_video_inputs(
            batch_size=self.batch_size,
            num_frames=self.num_frames,
            num_channels=self.num_channels,
            min_resolution=self.min_resolution,
            max_resolution=self.max_resolution,
            equal_resolution=equal_resolution,
            return_tensors=return_tensors,
        )


class TVRVideoProcessingTest(common.VideoProcessingTestMixin, unittest.TestCase):
    fast_video_processing_class = TVRVideoProcessor
    input_name = "pixel_values_videos"

    def setUp(self):
        super().setUp()
        self.video_processor_tester = TVRVideoProcessingTester(self)

    @property
    def video_processor_dict(self):
        return self.video_processor_tester.prepare_video_processor_dict()


del np
