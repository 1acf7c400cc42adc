"""FOMM training: losses, random warps for equivariance, the training loop, DDP helpers and
keypoint extraction. Submodules are imported explicitly (``from kp_motion.training.losses
import ...``) so that importing the package stays cheap."""
