# Source this file (bash or zsh) to enter the kp_motion environment made by scripts/setup.sh:
#   source scripts/env.sh
# Afterwards `kp-motion --help` and `python -c "from kp_motion.msg import Keypoint60"` work.
# With KP_MOTION_ROS_DISTRO=jazzy: the Jazzy environment (.venv-jazzy, install-jazzy).
_kp_motion_root="$(cd "$(dirname "${BASH_SOURCE[0]:-${(%):-%x}}")/.." && pwd)"
case "${KP_MOTION_ROS_DISTRO:-kilted}" in
  jazzy) _kp_motion_suffix="-jazzy" ;;
  *) _kp_motion_suffix="" ;;
esac
if [ ! -f "$_kp_motion_root/install$_kp_motion_suffix/local_setup.bash" ]; then
  echo "kp_motion: not set up yet; run ${KP_MOTION_ROS_DISTRO:+KP_MOTION_ROS_DISTRO=$KP_MOTION_ROS_DISTRO }$_kp_motion_root/scripts/setup.sh first" >&2
else
  # colcon's and venv's scripts read unset variables: relax `set -u` while sourcing them.
  case "$-" in *u*) _kp_motion_nounset=1; set +u ;; *) _kp_motion_nounset= ;; esac
  # shellcheck disable=SC1091
  . "$_kp_motion_root/.venv$_kp_motion_suffix/bin/activate"
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  # shellcheck disable=SC1091
  . "$_kp_motion_root/install$_kp_motion_suffix/local_setup.bash"
  [ -n "$_kp_motion_nounset" ] && set -u
  unset _kp_motion_nounset
fi
unset _kp_motion_root _kp_motion_suffix
