"""Evaluation of keypoint motion transfer: metrics, I3D/FVD, bandwidth, H.264 comparison, reports.

Submodules are imported explicitly (e.g. `from kp_motion.evaluation.metrics import ssim`) so that
importing one metric does not pull in matplotlib, PyAV or the I3D network.
"""
