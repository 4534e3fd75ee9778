"""Losses of the paper: SCP (Eq. (2)) and perceptual (Eqs. (3)-(7))."""

from photostyle.losses.losses import SCPHead, perceptual_loss, scp_loss

__all__ = ["SCPHead", "perceptual_loss", "scp_loss"]
