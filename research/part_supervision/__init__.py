"""Part-pose supervision of the keypoints on the synthetic dataset (see README.md here)."""
