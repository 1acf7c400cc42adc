"""H.264 bitrate search on a tiny clip (16 frames of 64 px)."""

from __future__ import annotations

import numpy as np
import pytest

from kp_motion.evaluation.codec import bitrate_for_psnr, clip_psnr, encode_decode, measure


def _moving_pattern(frames: int = 16, size: int = 64) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    clip = [
        np.stack(
            [
                128 + 100 * np.sin((cols + 3 * t) / 6) * np.cos(rows / 9),
                128 + 80 * np.cos((rows - 2 * t) / 5),
                128 + 50 * np.sin((cols + rows + t) / 8),
            ],
            axis=-1,
        )
        for t in range(frames)
    ]
    return np.stack(clip).astype(np.uint8)


def test_round_trip_and_psnr_grows_with_bitrate() -> None:
    clip = _moving_pattern()
    decoded, payload, container = encode_decode(clip, fps=25, kbps=200)
    assert decoded.shape == clip.shape and 0 < payload < container
    low, high = measure(clip, 25, 10), measure(clip, 25, 400)
    assert low.kbps < high.kbps and low.psnr < high.psnr
    assert clip_psnr(clip, clip) == float("inf")


def test_bitrate_search_reaches_the_target_at_the_lowest_tried_rate() -> None:
    clip = _moving_pattern()
    match = bitrate_for_psnr(clip, fps=25, target_psnr=28.0, min_kbps=2, max_kbps=2000)
    assert match.reached and match.best.psnr >= 28.0
    below = [t for t in match.trials if t.psnr < 28.0]
    assert below and all(t.requested_kbps < match.best.requested_kbps for t in below)
    assert not match.at_minimum
    easy = bitrate_for_psnr(clip, fps=25, target_psnr=5.0, min_kbps=2, max_kbps=2000)
    assert easy.reached and easy.at_minimum and easy.best.requested_kbps == 2
    unreachable = bitrate_for_psnr(clip, fps=25, target_psnr=99.0, max_kbps=500)
    assert not unreachable.reached and len(unreachable.trials) == 1


def test_odd_sizes_and_bad_input() -> None:
    decoded, _, _ = encode_decode(_moving_pattern(4, 64)[:, :63, :61], fps=25, kbps=100)
    assert decoded.shape == (4, 62, 60, 3)
    with pytest.raises(ValueError, match="uint8"):
        measure(np.zeros((4, 8, 8, 3), dtype=np.float32), 25, 100)
    with pytest.raises(ValueError, match="min_kbps"):
        bitrate_for_psnr(_moving_pattern(2, 16), 25, 30.0, min_kbps=10, max_kbps=5)
