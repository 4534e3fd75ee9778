"""Per-photo refinement of the curves head's colour grade."""

from __future__ import annotations

import pytest
import torch

from photostyle.losses.frontier import gram_log_ratio, ssim_luma
from photostyle.models.affine import AffineHead, LearnedStep, merge_steps
from photostyle.models.refine import RefineSettings, refine_grade


@pytest.fixture
def setup(make_encoder, tiny_cfg):  # type: ignore[no-untyped-def]
    enc = make_encoder()
    # A base that only shifts the mean colour leaves contrast and saturation to the grade.
    head = AffineHead(tiny_cfg.widths, bins=4, hidden=8, residual="curves", base_power=0.0)
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, 32, 40, generator=g) * 0.1 + 0.4  # flat
    style = torch.rand(1, 3, 24, 24, generator=g)  # contrasty: a real change to make
    out = head(content, style, enc(content), enc(style))
    return head, enc, content, style, out


@torch.no_grad()
def _loss(head, enc, content, style, base, grade, w_ssim: float) -> float:  # type: ignore[no-untyped-def]
    image = head.colour_model(content, base, grade).image.clamp(0, 1)
    style_term = gram_log_ratio(enc(image).taps, enc(content).taps, enc(style).taps).sum()
    return float(style_term + w_ssim * (1 - ssim_luma(image, content)).sum())


def test_refinement_lowers_the_photos_frontier_loss(setup) -> None:  # type: ignore[no-untyped-def]
    head, enc, content, style, out = setup
    settings = RefineSettings(steps=4, step=0.05, ssim_weight=1.0, tv_weight=0.0)
    with torch.inference_mode():  # as inside Stylizer.stylize
        grade = refine_grade(head, enc, content, style, out.base, out.residual, settings)
    assert grade.shape == out.residual.shape and not grade.requires_grad
    before = _loss(head, enc, content, style, out.base, out.residual, 1.0)
    after = _loss(head, enc, content, style, out.base, grade, 1.0)
    assert after < before - 1e-3
    assert all(p.grad is None for p in head.parameters())  # the head itself is not trained


def test_zero_steps_return_the_prediction(setup) -> None:  # type: ignore[no-untyped-def]
    head, enc, content, style, out = setup
    grade = refine_grade(head, enc, content, style, out.base, out.residual, RefineSettings())
    assert grade is out.residual


def test_refinement_needs_an_image_wide_grade(setup) -> None:  # type: ignore[no-untyped-def]
    head, enc, content, style, out = setup
    spatial = out.residual.expand(-1, -1, -1, 2, 2)
    with pytest.raises(ValueError, match="image-wide"):
        refine_grade(head, enc, content, style, out.base, spatial, RefineSettings(steps=1))


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": -1},
        {"step": 0.0},
        {"ssim_weight": -1.0},
        {"later_ssim_weight": -0.5},
        {"tv_weight": -1.0},
        {"levels": 0},
        {"levels": 5},
    ],
)
def test_settings_are_checked(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="refine"):
        RefineSettings(**bad)  # type: ignore[arg-type]


def test_later_steps_take_their_own_ssim_weight(setup, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    """With ``later_ssim_weight`` the first step (learned here) keeps w_ssim 3 and every later
    plain step takes the later weight: the same as refining in two runs, one per weight."""
    _, enc, content, style, out = setup
    steered = AffineHead(
        tiny_cfg.widths, bins=4, hidden=8, residual="curves", base_power=0.0, steer_hidden=8
    )
    assert steered.steer is not None
    with torch.no_grad():
        steered.steer.mlp[-1].bias.copy_(torch.linspace(-0.02, 0.02, 48))
    run = (steered, enc, content, style, out.base)
    scheduled = RefineSettings(steps=3, step=0.05, ssim_weight=3.0, later_ssim_weight=0.2)
    grade = refine_grade(*run, out.residual, scheduled)
    first = refine_grade(*run, out.residual, RefineSettings(steps=1, step=0.05, ssim_weight=3.0))
    rest = RefineSettings(steps=2, step=0.05, ssim_weight=0.2)
    torch.testing.assert_close(grade, refine_grade(*run, first, rest, learned=False))
    # The weight matters: at w_ssim 3 throughout the later steps land elsewhere.
    same = refine_grade(*run, out.residual, RefineSettings(steps=3, step=0.05, ssim_weight=3.0))
    assert (same - grade).abs().max() > 1e-4
    unset = RefineSettings(steps=3, step=0.05, ssim_weight=3.0, later_ssim_weight=None)
    torch.testing.assert_close(refine_grade(*run, out.residual, unset), same)


def test_given_taps_are_reused_and_give_the_same_grade(setup) -> None:  # type: ignore[no-untyped-def]
    head, enc, content, style, out = setup
    settings = RefineSettings(steps=2, step=0.05)
    fresh = refine_grade(head, enc, content, style, out.base, out.residual, settings)
    with torch.no_grad():
        taps_c, taps_s = enc(content).taps, enc(style).taps
    given = refine_grade(
        head, enc, content, style, out.base, out.residual, settings, taps_c, taps_s,
    )  # fmt: skip
    torch.testing.assert_close(given, fresh)


def test_each_step_moves_the_grade_by_its_length(setup) -> None:  # type: ignore[no-untyped-def]
    """Normalised steps: the whole grade moves ``step`` per step (not each coefficient)."""
    head, enc, content, style, out = setup
    one = refine_grade(
        head, enc, content, style, out.base, out.residual, RefineSettings(steps=1, step=0.07)
    )
    moved = (one - out.residual).flatten(1).norm(dim=1)
    torch.testing.assert_close(moved, torch.tensor([0.07]), rtol=1e-4, atol=1e-6)
    changes = (one - out.residual).abs().flatten()
    assert changes.max() > 3 * changes.median()  # spent where the loss is steep, not evenly


def test_untrained_learned_step_takes_the_plain_step(setup, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    head, enc, content, style, out = setup
    steered = AffineHead(
        tiny_cfg.widths, bins=4, hidden=8, residual="curves", base_power=0.0, steer_hidden=8
    )
    settings = RefineSettings(steps=2, step=0.05)
    plain = refine_grade(head, enc, content, style, out.base, out.residual, settings)
    same = refine_grade(steered, enc, content, style, out.base, out.residual, settings)
    torch.testing.assert_close(same, plain)


def test_a_learned_step_replaces_only_the_first_step(setup, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    """The last layer's bias is added to the first step; the second step is plain again."""
    head, enc, content, style, out = setup
    steered = AffineHead(
        tiny_cfg.widths, bins=4, hidden=8, residual="curves", base_power=0.0, steer_hidden=8
    )
    assert steered.steer is not None
    shift = torch.linspace(-0.02, 0.02, 48)
    with torch.no_grad():
        steered.steer.mlp[-1].bias.copy_(shift)
    one = RefineSettings(steps=1, step=0.05)
    first = refine_grade(steered, enc, content, style, out.base, out.residual, one)
    plain_first = refine_grade(head, enc, content, style, out.base, out.residual, one)
    torch.testing.assert_close(first, plain_first + shift.view(1, 12, 4, 1, 1))
    two = refine_grade(
        steered, enc, content, style, out.base, out.residual, RefineSettings(steps=2, step=0.05)
    )
    second = refine_grade(head, enc, content, style, out.base, first, one)  # a plain step on
    torch.testing.assert_close(two, second)


def test_a_bfloat16_learned_step_refines_a_float32_grade(setup, tiny_cfg) -> None:  # type: ignore[no-untyped-def]
    """A head run in bfloat16 (``--dtype auto`` on CPUs with bf16 units) keeps its learned step in
    bfloat16 while the refinement works in float32: the step's inputs are cast to its dtype."""
    _, enc, content, style, out = setup
    steered = AffineHead(
        tiny_cfg.widths, bins=4, hidden=8, residual="curves", base_power=0.0, steer_hidden=8
    )
    assert steered.steer is not None
    with torch.no_grad():
        steered.steer.mlp[-1].bias.fill_(0.01)
    settings = RefineSettings(steps=1, step=0.05)
    full = refine_grade(steered, enc, content, style, out.base, out.residual, settings)
    steered.steer.to(torch.bfloat16)
    half = refine_grade(steered, enc, content, style, out.base, out.residual, settings)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=2e-3, rtol=0)


def test_learned_step_untrained_is_the_normalised_gradient_step() -> None:
    step = LearnedStep(4, hidden=8)
    grade = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    grad_style = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    grad_structure = torch.tensor([[0.0, 4.0, 0.0, 0.0]])  # sum (3, 4, 0, 0): norm 5
    delta = step(grade, grad_style, grad_structure, torch.zeros(1, 2), 0.5)
    torch.testing.assert_close(delta, torch.tensor([[-0.3, -0.4, 0.0, 0.0]]))


def test_learned_step_checks_shapes() -> None:
    step = LearnedStep(4, hidden=8)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        step(torch.zeros(1, 4), torch.zeros(1, 5), torch.zeros(1, 4), torch.zeros(1, 2), 0.1)
    with pytest.raises(ValueError, match="positive"):
        LearnedStep(0, hidden=8)


def test_merged_steps_change_the_grade_by_the_mean_of_their_changes() -> None:
    torch.manual_seed(0)
    steps = [LearnedStep(3, hidden=5).double() for _ in range(3)]
    for step in steps:  # away from the zero start, LayerNorm affine included
        for p in step.parameters():
            torch.nn.init.normal_(p, std=0.5)
    merged = merge_steps(steps)
    assert merged.mlp[1].out_features == 15 and merged.mlp[5].out_features == 3
    grade, grad_s, grad_q = (torch.randn(4, 3, dtype=torch.float64) for _ in range(3))
    losses = torch.randn(4, 2, dtype=torch.float64)
    changes = torch.stack([s(grade, grad_s, grad_q, losses, 0.2) for s in steps])
    torch.testing.assert_close(merged(grade, grad_s, grad_q, losses, 0.2), changes.mean(0))
    # One step merges into itself; steps of other widths are refused.
    torch.testing.assert_close(
        merge_steps(steps[:1])(grade, grad_s, grad_q, losses, 0.2), changes[0]
    )
    with pytest.raises(ValueError, match="one size and width"):
        merge_steps([steps[0], LearnedStep(3, hidden=4).double()])
    with pytest.raises(ValueError, match="at least one"):
        merge_steps([])


def test_learned_step_gradients_float64() -> None:
    torch.manual_seed(0)
    step = LearnedStep(3, hidden=5).double()
    for p in step.parameters():  # away from the zero start, so the MLP takes part
        torch.nn.init.normal_(p, std=0.5)
    inputs = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    losses = torch.randn(2, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b, c: step(a, b, c, losses, 0.1), inputs)


def test_three_levels_ignore_the_layers_past_relu3_1(setup) -> None:  # type: ignore[no-untyped-def]
    """``levels=3``: the style term stops at relu3_1; conv3_2..conv4_1 cannot change the grade."""
    head, enc, content, style, out = setup
    settings = {
        3: RefineSettings(steps=2, step=0.05, levels=3),
        4: RefineSettings(steps=2, step=0.05),
    }
    before = {
        n: refine_grade(head, enc, content, style, out.base, out.residual, s)
        for n, s in settings.items()
    }
    with torch.no_grad():
        enc.convs["conv4_1"].weight.mul_(3.0)
    after = {
        n: refine_grade(head, enc, content, style, out.base, out.residual, s)
        for n, s in settings.items()
    }
    torch.testing.assert_close(after[3], before[3])
    assert not torch.allclose(after[4], before[4])
