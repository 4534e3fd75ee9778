"""Two-stage stylization + re-stylization pipeline (paper Fig. 1) and its loss, Eq. (8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from photostyle.losses import SCPHead, perceptual_loss, statistics_loss
from photostyle.models.decoder import Decoder
from photostyle.models.encoder import VGGEncoder
from photostyle.models.stylizer import ModelConfig, build_head

StyleTerm = Literal["stats", "feature"]


@dataclass(frozen=True)
class LossSwitches:
    """Which terms of Eq. (8) are on (the paper's ablations, Table III)."""

    scp: bool = True  # L_r^{U,i}, L_r^{V,i}
    restyle: bool = True  # the V stage and its terms
    perceptual: bool = True  # all L_p terms
    beta: float = 1.0  # weight of the perceptual terms
    style_term: StyleTerm = "stats"  # Eqs. (4), (6): channel statistics or the literal feature diff
    relative: bool = True  # each squared error relative to its target's energy (see losses.py)
    reconstruction: bool = False  # autoencoder: U only, Eq. (3) + SCP; no style terms, no V


class TwoStageModel(nn.Module):
    """Stylizer U, re-stylizer V (same architecture) sharing one fixed encoder, plus SCP heads.

    U and V are built by :func:`~photostyle.models.stylizer.build_head`, the builder of the
    inference model, so U's state is the ``decoder`` of a
    :class:`~photostyle.models.stylizer.PhotoStylizer` of ``config``.

    Args:
        config: architecture of U and V (a pixel-decoder head: their SCP terms need its Q^i).
        encoder: the fixed VGG encoder, of ``config``'s layout.

    Raises:
        ValueError: ``config`` has another head than the pixel decoder.
    """

    def __init__(self, config: ModelConfig, encoder: VGGEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        u, v = build_head(config), build_head(config)
        if not (isinstance(u, Decoder) and isinstance(v, Decoder)):
            raise ValueError(
                f"the two-stage pipeline trains pixel decoders, not the {config.head!r} head"
            )
        self.u, self.v = u, v
        self.scp_u = SCPHead(config.widths[:3])
        self.scp_v = SCPHead(config.widths[:3])

    def forward(
        self, ic: torch.Tensor, is_: torch.Tensor, it: torch.Tensor, switches: LossSwitches
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Losses of one batch of triplets.

        In reconstruction mode (``switches.reconstruction``) U decodes I_c's own features (use FA
        ``"none"`` for a plain autoencoder), ``is_`` and ``it`` are not used, and the terms are
        ``scp_u`` and ``p_u1`` only.

        Args:
            ic: content images I_c, (B, 3, H, W) in [0, 1].
            is_: style images I_s, (B, 3, H, W).
            it: similar-content images I_t, (B, 3, H, W).
            switches: which loss terms are on.

        Returns:
            (losses, images): ``losses["total"]`` is Eq. (8); the other entries are its terms
            (detached); ``images`` holds the stylized ``u`` and re-stylized ``v`` outputs.
        """
        rel = switches.relative
        # Under mixed precision (autocast) the networks run in 16 bits; every loss term is computed
        # in float32 from float32 copies of its inputs.
        device_type = ic.device.type

        def f32(ts: list[torch.Tensor]) -> list[torch.Tensor]:
            return [t.float() for t in ts]

        def content_term(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
            with torch.autocast(device_type, enabled=False):
                return perceptual_loss(f32(a), f32(b), relative=rel)

        def style_term(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
            with torch.autocast(device_type, enabled=False):
                if switches.style_term == "feature":
                    return perceptual_loss(f32(a), f32(b), relative=rel)
                return statistics_loss(f32(a), f32(b), relative=rel)

        def scp_term(head: SCPHead, q: list[torch.Tensor], p: list[torch.Tensor]) -> torch.Tensor:
            with torch.autocast(device_type, enabled=False):
                return head(f32(q), f32(p), relative=rel)  # Eq. (2), sum_i

        recon = switches.reconstruction
        with torch.no_grad():
            enc_c = self.encoder(ic)
            enc_s = enc_c if recon else self.encoder(is_)
            # A residual U starts from the image-level FA of I_c (the content in the style's
            # colours); Eq. (3) then asks it to keep that image's content, not I_c's colours,
            # which the decoder cannot see once FA has replaced the content statistics.
            target_c = enc_c
            if self.u.residual and not recon:
                target_c = self.encoder(self.u.image_base(ic, is_))
        # U(I_c, I_s); U(I_c, I_c) when reconstructing
        out_u = self.u(enc_c, enc_s, base=ic, base_style=ic if recon else is_)
        enc_u = self.encoder(out_u.image)
        terms: dict[str, torch.Tensor] = {}
        images = {"u": out_u.image}
        if switches.scp:
            terms["scp_u"] = scp_term(self.scp_u, out_u.q, enc_c.pooled)  # Eq. (2), sum_i
        if switches.perceptual:
            terms["p_u1"] = content_term(target_c.taps, enc_u.taps)  # Eq. (3)
            if not recon:
                terms["p_u2"] = style_term(enc_s.taps, enc_u.taps)  # Eq. (4)
        if switches.restyle and not recon:
            with torch.no_grad():
                enc_t = self.encoder(it)
            out_v = self.v(enc_u, enc_t, base=out_u.image, base_style=it)  # V(U(I_c, I_s), I_t)
            enc_v = self.encoder(out_v.image)
            images["v"] = out_v.image
            if switches.scp:
                terms["scp_v"] = scp_term(self.scp_v, out_v.q, enc_u.pooled)  # Eq. (2)
            if switches.perceptual:
                terms["p_v1"] = content_term(enc_u.taps, enc_v.taps)  # Eq. (5)
                terms["p_v2"] = style_term(enc_t.taps, enc_v.taps)  # Eq. (6)
                terms["p_c"] = content_term(enc_c.taps, enc_v.taps)  # Eq. (7)
        # Eq. (8): L = sum L_r^U + sum L_r^V + beta * (L_p^c + sum L_p^U + sum L_p^V)
        scp = sum((t for k, t in terms.items() if k.startswith("scp")), ic.new_zeros(()))
        perc = sum((t for k, t in terms.items() if k.startswith("p_")), ic.new_zeros(()))
        losses = {k: t.detach() for k, t in terms.items()}
        losses["total"] = scp + switches.beta * perc
        return losses, images
