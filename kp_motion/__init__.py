"""kp_motion: keypoint-based motion transfer (FOMM keypoints, forecasting, rendering)."""

# The generated message module (kp_motion.msg) lives in the colcon install space, not in the
# source tree. When the source tree comes first on sys.path (running from the repository
# root), let the package span both folders so `from kp_motion.msg import Keypoint60` works.
# Nothing here must survive a build: rosidl may install an empty __init__.py over this one,
# and the installed package is complete without it.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
