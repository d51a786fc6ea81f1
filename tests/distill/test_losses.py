"""KD losses against their reference formulas, computed by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slimkit import AttentionTransfer, DecoupledKD, HintKD, LogitKD
from slimkit.distill import attention_map


def _reference_kd(s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · mean over the batch of Σ_c p_t,c (log p_t,c − log p_s,c), written out."""
    p_t = torch.softmax(t / temperature, dim=1)
    log_p_t = torch.log_softmax(t / temperature, dim=1)
    log_p_s = torch.log_softmax(s / temperature, dim=1)
    per_example = (p_t * (log_p_t - log_p_s)).sum(dim=1)
    return temperature**2 * per_example.mean()


def _reference_ce(s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(s, dim=1)[torch.arange(len(y)), y].mean()


@pytest.mark.parametrize(("temperature", "alpha"), [(1.0, 0.5), (3.0, 0.7), (8.0, 0.0)])
def test_logit_kd_matches_the_reference_formula(temperature: float, alpha: float) -> None:
    s, t = torch.randn(6, 10) * 3, torch.randn(6, 10) * 3
    y = torch.randint(10, (6,))
    expected = alpha * _reference_kd(s, t, temperature) + (1 - alpha) * _reference_ce(s, y)
    got = LogitKD(temperature=temperature, alpha=alpha)(s, t, y)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_logit_kd_hand_computed_numbers() -> None:
    # Two classes, T = 2: p_t = softmax([0, 2] / 2), p_s = softmax([0, 0]) = (1/2, 1/2).
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    p1 = 1 / (1 + torch.e)  # softmax([0, 1])[0]
    kl = p1 * torch.log(torch.tensor(2 * p1)) + (1 - p1) * torch.log(torch.tensor(2 * (1 - p1)))
    got = LogitKD(temperature=2.0, alpha=1.0)(s, t)
    assert got.item() == pytest.approx(4 * kl.item(), rel=1e-6)


def test_the_t_squared_factor() -> None:
    s, t = torch.randn(5, 7), torch.randn(5, 7)
    for temperature in (1.0, 2.0, 5.0):
        kd = LogitKD(temperature=temperature, alpha=1.0)(s, t)
        plain_kl = F.kl_div(
            torch.log_softmax(s / temperature, 1),
            torch.softmax(t / temperature, 1),
            reduction="batchmean",
        )
        assert kd.item() == pytest.approx(temperature**2 * plain_kl.item(), rel=1e-5)
    # Hinton et al.: at high T, T²·KL tends to matching centred logits, 1/(2C) Σ (Δs − Δt)².
    temperature = 1000.0
    centred = (s - s.mean(1, keepdim=True)) - (t - t.mean(1, keepdim=True))
    limit = (centred**2).sum(1).mean() / (2 * s.shape[1])
    kd = LogitKD(temperature=temperature, alpha=1.0)(s.double(), t.double())
    assert kd.item() == pytest.approx(limit.item(), rel=1e-2)


def test_logit_kd_is_zero_for_identical_logits_and_has_gradients() -> None:
    t = torch.randn(4, 10)
    assert LogitKD(alpha=1.0)(t.clone(), t).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(4, 10, requires_grad=True)
    LogitKD(alpha=0.5)(s, t, torch.zeros(4, dtype=torch.long)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_logit_kd_bad_input() -> None:
    with pytest.raises(ValueError, match="temperature must be > 0"):
        LogitKD(temperature=0.0)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        LogitKD(alpha=1.5)
    with pytest.raises(ValueError, match="same classes"):
        LogitKD()(torch.randn(2, 10), torch.randn(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="pass the labels"):
        LogitKD(alpha=0.5)(torch.randn(2, 10), torch.randn(2, 10))


def test_hint_kd_matches_the_fitnets_formula() -> None:
    hint = HintKD([(3, 5, 5), (4,)], [(6, 5, 5), (2,)])
    fs, ft = torch.randn(2, 3, 5, 5), torch.randn(2, 6, 5, 5)
    vs, vt = torch.randn(2, 4), torch.randn(2, 2)
    conv_w = hint.adapters[0].weight[:, :, 0, 0]  # (6, 3): a 1x1 conv is a per-pixel matmul
    mapped = torch.einsum("oc,nchw->nohw", conv_w, fs)
    first = ((mapped - ft) ** 2).mean()
    second = ((vs @ hint.adapters[1].weight.T - vt) ** 2).mean()
    torch.testing.assert_close(hint([fs, vs], [ft, vt]), (first + second) / 2)


def test_hint_adapters_and_student_features_get_gradients() -> None:
    hint = HintKD([(3, 4, 4)], [(8, 4, 4)])
    student = torch.randn(2, 3, 4, 4, requires_grad=True)
    hint([student], [torch.randn(2, 8, 4, 4)]).backward()
    weight = hint.adapters[0].weight
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert isinstance(hint.adapters[0], torch.nn.Conv2d) and weight.shape == (8, 3, 1, 1)


def test_hint_kd_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same spatial size"):
        HintKD([(3, 4, 4)], [(8, 8, 8)])
    with pytest.raises(ValueError, match="same rank"):
        HintKD([(3, 4, 4)], [(8,)])
    with pytest.raises(ValueError, match="one teacher shape per student shape"):
        HintKD([(3,)], [])


def test_attention_transfer_matches_the_reference_formula() -> None:
    s = [torch.randn(3, 4, 5, 5), torch.randn(3, 2, 3, 3)]
    t = [torch.randn(3, 9, 5, 5), torch.randn(3, 7, 3, 3)]  # channel counts may differ
    per_pair = []
    for fs, ft in zip(s, t, strict=True):
        distances = []
        for n in range(3):
            qs = (fs[n].abs() ** 2).mean(0).flatten()
            qt = (ft[n].abs() ** 2).mean(0).flatten()
            distances.append(torch.linalg.vector_norm(qs / qs.norm() - qt / qt.norm()))
        per_pair.append(torch.stack(distances).mean())
    expected = torch.stack(per_pair).mean()
    torch.testing.assert_close(AttentionTransfer()(s, t), expected)


def test_attention_maps_ignore_scale_and_sign() -> None:
    f = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(attention_map(f), attention_map(-3.0 * f))
    assert attention_map(f).norm(dim=1).tolist() == pytest.approx([1.0, 1.0])
    assert AttentionTransfer()([f], [5.0 * f]).item() == pytest.approx(0.0, abs=1e-6)


def test_attention_transfer_bad_input() -> None:
    with pytest.raises(ValueError, match="same resolution"):
        AttentionTransfer()([torch.randn(1, 2, 4, 4)], [torch.randn(1, 2, 8, 8)])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        attention_map(torch.randn(2, 8))
    with pytest.raises(ValueError, match="p must be > 0"):
        AttentionTransfer(p=0)


def _per_example_kl(s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    log_s, log_t = F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1)
    return (log_t.exp() * (log_t - log_s)).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_decouples_hintons_term(temperature: float) -> None:
    # KL = TCKD + (1 - p_t) · NCKD for each example, p_t the teacher's probability of the true
    # class: with beta = 1 - p_t, DKD is Hinton's KD exactly; with beta = 1 it is larger.
    torch.manual_seed(0)
    s, t, y = torch.randn(6, 10), 3 * torch.randn(6, 10), torch.randint(0, 10, (6,))
    p_true = F.softmax(t / temperature, -1).gather(1, y[:, None]).squeeze(1)
    kl = _per_example_kl(s, t, temperature) * temperature**2
    for i in range(len(y)):
        one = slice(i, i + 1)
        dkd = DecoupledKD(temperature=temperature, alpha=1.0, beta=float(1 - p_true[i]))
        torch.testing.assert_close(dkd(s[one], t[one], y[one]), kl[i], atol=1e-5, rtol=1e-4)
    full = DecoupledKD(temperature=temperature, alpha=1.0, beta=1.0)(s, t, y)
    assert float(full) > float(kl.mean()) + 1e-3


def test_dkd_mixes_cross_entropy_and_has_gradients() -> None:
    torch.manual_seed(1)
    s = torch.randn(4, 5, requires_grad=True)
    t, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    dkd = DecoupledKD(temperature=2.0, alpha=0.25, beta=8.0)
    expected = 0.25 * dkd.distillation_term(s, t, y) + 0.75 * F.cross_entropy(s, y)
    loss = dkd(s, t, y)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
    assert float(DecoupledKD(alpha=1.0)(t, t, y)) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="pass the labels"):
        dkd(s, t)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        DecoupledKD(beta=-1.0)
