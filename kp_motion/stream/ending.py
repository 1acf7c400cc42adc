"""Where a capture's clip ended, for a detector in another process (role both: camera ->
keypoint_detector).

The camera announces its clip's end with the capture stamp of its last frame (the graph's
clip_end topic). The detector must send the stream's end marker only after it processed that
frame, and the two arrive on different topics in either order: the announcement usually comes
after the last image, but images can still be queued (a detector slower than the camera) when
it arrives. ClipEnd holds the announcement until the frame it names has been seen.
"""

from __future__ import annotations


class ClipEnd:
    """Capture stamps seen and end announcements -> when to send the end marker, once per end.

    Both calls return True exactly when the marker is due now (after the image just seen was
    processed): clip_ended(stamp) when the detector already processed the frame captured at
    that stamp (or a later one), seen(stamp) for the image that completes a pending end. A
    repeated announcement of an end already marked (a latched topic delivers its last message
    again to a reader that matches anew) is ignored. If the announced frame never reaches the
    detector, no marker is due: the receiver then ends the stream on its own (2 x max_gap).
    """

    def __init__(self) -> None:
        self.latest_seen: int | None = None  # newest capture stamp (ns) the detector processed
        self.pending: int | None = None  # announced last stamp whose frame is not seen yet
        self.marked: int | None = None  # last stamp of the newest end already marked

    def clip_ended(self, last_stamp_ns: int) -> bool:
        """The camera's announcement: its clip's last frame was captured at last_stamp_ns."""
        if self.marked is not None and last_stamp_ns <= self.marked:
            return False
        self.pending = last_stamp_ns
        return self._complete()

    def seen(self, stamp_ns: int) -> bool:
        """The detector processed the image captured at stamp_ns."""
        if self.latest_seen is None or stamp_ns > self.latest_seen:
            self.latest_seen = stamp_ns
        # Only the announced frame itself: a later one belongs to another clip, and marking
        # after it would end the stream one frame too late.
        return stamp_ns == self.pending and self._complete()

    def _complete(self) -> bool:
        if self.pending is None or self.latest_seen is None or self.latest_seen < self.pending:
            return False
        self.marked, self.pending = self.pending, None
        return True
