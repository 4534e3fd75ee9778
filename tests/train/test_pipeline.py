"""Tests of the two-stage U + V pipeline (paper Fig. 1) and its loss, Eq. (8)."""

from __future__ import annotations

import itertools

import pytest
import torch

from photostyle.models.encoder import VGGEncoder
from photostyle.models.stylizer import ModelConfig
from photostyle.train.pipeline import LossSwitches, TwoStageModel

SCP_KEYS = {"scp_u", "scp_v"}
PERCEPTUAL_KEYS = {"p_u1", "p_u2", "p_v1", "p_v2", "p_c"}
V_KEYS = {"scp_v", "p_v1", "p_v2", "p_c"}


def _triplet(seed: int = 0, size: int = 16, batch: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, 3, size, size, generator=g) for _ in range(3))


def _two_stage(encoder: VGGEncoder, fa: str, residual: bool = False) -> TwoStageModel:
    """U and V of FA ``fa`` on ``encoder``'s layout."""
    cfg = encoder.config
    config = ModelConfig(
        arch=cfg.name,
        widths=cfg.widths,
        depths=cfg.depths,
        convention=encoder.convention,
        fa=fa,
        residual=residual,
    )
    return TwoStageModel(config, encoder)


def _model(encoder: VGGEncoder, seed: int = 0) -> TwoStageModel:
    torch.manual_seed(seed)
    return _two_stage(encoder, "mean_std")


SWITCH_COMBOS = [
    (scp, restyle, perceptual)
    for scp, restyle, perceptual in itertools.product((True, False), repeat=3)
    if scp or perceptual
]


@pytest.mark.parametrize(("scp", "restyle", "perceptual"), SWITCH_COMBOS)
def test_loss_terms_follow_the_ablation_switches(
    tiny_encoder: VGGEncoder, scp: bool, restyle: bool, perceptual: bool
):
    model = _model(tiny_encoder)
    losses, images = model(*_triplet(), LossSwitches(scp, restyle, perceptual))
    expected = set()
    if scp:
        expected |= SCP_KEYS
    if perceptual:
        expected |= PERCEPTUAL_KEYS
    if not restyle:
        expected -= V_KEYS
    assert set(losses) == expected | {"total"}
    assert set(images) == ({"u", "v"} if restyle else {"u"})
    for image in images.values():
        assert image.shape == (2, 3, 16, 16)
    for key, value in losses.items():
        assert value.ndim == 0
        assert torch.isfinite(value)
        assert value.requires_grad == (key == "total")  # the terms are detached
        assert float(value.detach()) > 0.0


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_total_is_eq8_of_the_returned_terms(tiny_encoder: VGGEncoder, beta: float):
    model = _model(tiny_encoder)
    losses, _ = model(*_triplet(1), LossSwitches(beta=beta))
    scp = float(losses["scp_u"] + losses["scp_v"])
    perc = sum(float(losses[k]) for k in ("p_u1", "p_u2", "p_v1", "p_v2", "p_c"))
    # Eq. (8): L = sum L_r^U + sum L_r^V + beta * (L_p^c + sum L_p^U + sum L_p^V)
    assert float(losses["total"].detach()) == pytest.approx(scp + beta * perc, rel=1e-6)


def test_beta_scales_only_the_perceptual_terms(tiny_encoder: VGGEncoder):
    model = _model(tiny_encoder)
    batch = _triplet(2)
    l1, _ = model(*batch, LossSwitches(beta=1.0))
    l0, _ = model(*batch, LossSwitches(beta=0.0))
    assert float(l0["total"].detach()) == pytest.approx(float(l0["scp_u"] + l0["scp_v"]), rel=1e-6)
    assert float(l1["total"].detach()) > float(l0["total"].detach())


def _grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.norm()) for p in module.parameters() if p.grad is not None)


def test_gradients_reach_decoders_and_scp_heads_not_the_encoder(tiny_encoder: VGGEncoder):
    model = _model(tiny_encoder)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # even the encoder is handed over
    losses, _ = model(*_triplet(3), LossSwitches())
    losses["total"].backward()
    for name in ("u", "v", "scp_u", "scp_v"):
        part = getattr(model, name)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())
        assert _grad_norm(part) > 0.0, name
    assert all(not p.requires_grad and p.grad is None for p in model.encoder.parameters())
    u_before = [p.detach().clone() for p in model.u.parameters()]
    opt.step()
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert any(not torch.equal(a, p) for a, p in zip(u_before, model.u.parameters(), strict=True))


def test_without_restyle_v_gets_no_gradient(tiny_encoder: VGGEncoder):
    model = _model(tiny_encoder)
    losses, _ = model(*_triplet(4), LossSwitches(restyle=False))
    losses["total"].backward()
    assert _grad_norm(model.u) > 0.0 and _grad_norm(model.scp_u) > 0.0
    assert all(p.grad is None for p in (*model.v.parameters(), *model.scp_v.parameters()))


def test_v_stage_losses_also_train_u(tiny_encoder: VGGEncoder):
    # V's input is U(I_c, I_s) with its graph: the V terms must change U's gradient.
    batch = _triplet(5)
    grads = []
    for restyle in (False, True):
        model = _model(tiny_encoder)
        losses, _ = model(*batch, LossSwitches(scp=False, restyle=restyle))
        losses["total"].backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.u.parameters()]))
    assert not torch.allclose(grads[0], grads[1])


def test_a_few_adam_steps_lower_the_total_loss(tiny_encoder: VGGEncoder):
    model = _model(tiny_encoder)
    batch = _triplet(6, size=24)
    params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))
    totals = []
    for _ in range(30):
        losses, _ = model(*batch, LossSwitches())
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        totals.append(float(losses["total"].detach()))
    assert all(torch.isfinite(torch.tensor(totals)))
    assert totals[-1] < 0.8 * totals[0], totals  # about 0.5 with these seeds


@pytest.mark.parametrize("relative", [False, True])
def test_style_term_selects_eq4_and_eq6_form(tiny_encoder: VGGEncoder, relative: bool):
    from photostyle.losses import perceptual_loss, statistics_loss

    model = _model(tiny_encoder)
    ic, is_, it = _triplet(5)
    for style_term, loss_fn in (("feature", perceptual_loss), ("stats", statistics_loss)):
        switches = LossSwitches(restyle=False, style_term=style_term, relative=relative)
        losses, images = model(ic, is_, it, switches)
        with torch.no_grad():
            expected_u2 = loss_fn(
                tiny_encoder(is_).taps, tiny_encoder(images["u"]).taps, relative=relative
            )
            expected_u1 = perceptual_loss(
                tiny_encoder(ic).taps, tiny_encoder(images["u"]).taps, relative=relative
            )
        assert float(losses["p_u2"]) == pytest.approx(float(expected_u2), rel=1e-5)
        assert float(losses["p_u1"]) == pytest.approx(float(expected_u1), rel=1e-5)


# --- reconstruction mode (the autoencoder of the AdaIN/WCT baselines) ---------------------------


@pytest.mark.parametrize(("scp", "perceptual"), [(True, True), (True, False), (False, True)])
def test_reconstruction_has_only_content_and_scp_terms_of_u(
    tiny_encoder: VGGEncoder, scp: bool, perceptual: bool
):
    torch.manual_seed(0)
    model = _two_stage(tiny_encoder, "none")
    ic, is_, it = _triplet(7)
    switches = LossSwitches(scp=scp, perceptual=perceptual, reconstruction=True)
    losses, images = model(ic, is_, it, switches)
    expected = ({"scp_u"} if scp else set()) | ({"p_u1"} if perceptual else set())
    assert set(losses) == expected | {"total"} and set(images) == {"u"}
    total = sum(float(losses[k]) for k in expected)
    assert float(losses["total"].detach()) == pytest.approx(total, rel=1e-6)
    # The style and similar-content images are not used at all.
    again, _ = model(ic, torch.rand_like(is_), torch.rand_like(it), switches)
    assert float(again["total"].detach()) == float(losses["total"].detach())
    if perceptual:
        from photostyle.losses import perceptual_loss

        with torch.no_grad():  # Eq. (3) with the output of U(I_c, I_c)
            p_u1 = perceptual_loss(
                tiny_encoder(ic).taps, tiny_encoder(images["u"]).taps, relative=True
            )
        assert float(losses["p_u1"]) == pytest.approx(float(p_u1), rel=1e-5)
    losses["total"].backward()
    assert _grad_norm(model.u) > 0.0
    assert all(p.grad is None for p in (*model.v.parameters(), *model.scp_v.parameters()))


def test_a_few_reconstruction_steps_lower_the_loss(tiny_encoder: VGGEncoder):
    torch.manual_seed(0)
    model = _two_stage(tiny_encoder, "none")
    batch = _triplet(8, size=24)
    params = [*model.u.parameters(), *model.scp_u.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))
    switches = LossSwitches(reconstruction=True)
    totals = []
    for _ in range(30):
        losses, _ = model(*batch, switches)
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        opt.step()
        totals.append(float(losses["total"].detach()))
    assert all(torch.isfinite(torch.tensor(totals)))
    assert totals[-1] < 0.8 * totals[0], totals


def test_residual_u_keeps_the_image_level_fa_content(tiny_encoder: VGGEncoder):
    torch.manual_seed(0)
    model = _two_stage(tiny_encoder, "mean_std", residual=True)
    ic, is_, it = _triplet(6)
    losses, images = model(ic, is_, it, LossSwitches(relative=False))
    # An untrained residual U returns the image-level FA of I_c, which is Eq. (3)'s target: 0.
    base = model.u.image_base(ic, is_)
    torch.testing.assert_close(images["u"], base)
    assert float(losses["p_u1"]) == 0.0
    # The style term still sees the real style, and V starts from U's output.
    assert float(losses["p_u2"]) > 0.0
    torch.testing.assert_close(images["v"], model.v.image_base(images["u"], it))


# --- memory format and mixed precision -----------------------------------------------------------


@pytest.mark.parametrize("fa", ["mean_std", "wct"])
def test_channels_last_gives_the_same_losses_and_gradients(tiny_encoder: VGGEncoder, fa: str):
    batch = _triplet(9, size=24)
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = _two_stage(tiny_encoder, fa, residual=True)
        inputs = batch
        if channels_last:
            model.to(memory_format=torch.channels_last)
            inputs = tuple(t.contiguous(memory_format=torch.channels_last) for t in batch)
            assert model.u.block1[-1].weight.is_contiguous(memory_format=torch.channels_last)
        losses, _ = model(*inputs, LossSwitches())
        losses["total"].backward()
        results.append((losses, torch.cat([p.grad.flatten() for p in model.u.parameters()])))
    (a, grad_a), (b, grad_b) = results
    for key in a:
        assert float(b[key].detach()) == pytest.approx(float(a[key].detach()), rel=1e-4), key
    torch.testing.assert_close(grad_b, grad_a, rtol=1e-3, atol=1e-6)


def test_loss_terms_stay_float32_under_bfloat16_autocast(tiny_encoder: VGGEncoder):
    torch.manual_seed(0)
    model = _two_stage(tiny_encoder, "mean_std", residual=True)  # the training recipe
    batch = _triplet(10)
    full, _ = model(*batch, LossSwitches())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half, _ = model(*batch, LossSwitches())
    assert half["total"] != full["total"]  # the networks did run in bfloat16
    for key in full:
        assert half[key].dtype == torch.float32, key
        expected = float(full[key].detach())
        assert float(half[key].detach()) == pytest.approx(expected, rel=0.05, abs=1e-3), key
    half["total"].backward()
    assert all(p.grad.dtype == torch.float32 for p in model.u.parameters())
