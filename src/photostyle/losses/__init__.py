"""Losses of the paper: SCP (Eq. (2)) and perceptual (Eqs. (3)-(7))."""

from photostyle.losses.losses import (
    SCPHead,
    channel_stats,
    gram_distance,
    gram_matrix,
    perceptual_loss,
    scp_loss,
    statistics_loss,
)

__all__ = [
    "SCPHead",
    "channel_stats",
    "gram_distance",
    "gram_matrix",
    "perceptual_loss",
    "scp_loss",
    "statistics_loss",
]
