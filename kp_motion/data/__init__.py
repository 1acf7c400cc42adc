"""Data: video/image I/O, the synthetic motion dataset and first-order-model layout loaders.

Submodules are imported explicitly (``from kp_motion.data.video_io import read_video``) so that
importing this package does not pull in torch or the codecs.
"""
