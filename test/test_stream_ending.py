"""ClipEnd: the keypoint_detector's end marker goes out once the camera's announced last frame
has been processed, whichever of the two messages comes first (no ROS)."""

from __future__ import annotations

from kp_motion.stream.ending import ClipEnd

PERIOD = 40_000_000  # ns, 25 fps
STAMPS = [1_000_000_000 + k * PERIOD for k in range(5)]


def test_an_announcement_after_the_last_frame_marks_at_once():
    ending = ClipEnd()
    assert [ending.seen(stamp) for stamp in STAMPS] == [False] * 5
    assert ending.clip_ended(STAMPS[-1])


def test_an_announcement_before_queued_frames_waits_for_the_last_one():
    ending = ClipEnd()
    assert not ending.seen(STAMPS[0])
    assert not ending.clip_ended(STAMPS[-1])  # frames 1..4 still queued
    assert [ending.seen(stamp) for stamp in STAMPS[1:]] == [False, False, False, True]


def test_an_end_is_marked_once_even_when_announced_again():
    ending = ClipEnd()
    for stamp in STAMPS:
        ending.seen(stamp)
    assert ending.clip_ended(STAMPS[-1])
    assert not ending.clip_ended(STAMPS[-1])  # the latched message delivered again
    assert not ending.seen(STAMPS[-1])


def test_nothing_is_marked_without_an_announcement_or_before_its_frame():
    ending = ClipEnd()
    assert not any(ending.seen(stamp) for stamp in STAMPS)
    late = ClipEnd()
    assert not late.clip_ended(STAMPS[2])
    assert not late.seen(STAMPS[3])  # a frame of another clip, after the announced one


def test_a_later_clip_gets_its_own_end():
    ending = ClipEnd()
    for stamp in STAMPS:
        ending.seen(stamp)
    assert ending.clip_ended(STAMPS[-1])
    later = [STAMPS[-1] + (k + 10) * PERIOD for k in range(3)]
    assert not ending.clip_ended(later[-1])
    assert [ending.seen(stamp) for stamp in later] == [False, False, True]
