"""Standard AutoAttack through pyautoattack: runs on CPU, stays in the threat model, breaks an undefended model."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from torch import nn

from robustlit.attacks import AttackSpec, build_attack


def test_standard_autoattack_breaks_an_undefended_model() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images[:300], dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(digits.target[:300])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    x, y = x[:64], y[:64]
    spec = AttackSpec(name="autoattack", eps=0.2)
    assert spec.metric_name == "autoattack_linf_0.2"
    x_adv = build_attack(spec, model, num_classes=10, batch_size=64)(x, y)
    assert (x_adv - x).abs().max() <= 0.2 + 1e-5 and 0 <= x_adv.min() and x_adv.max() <= 1
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
        robust = (model(x_adv).argmax(1) == y).float().mean().item()
    assert clean > 0.9 and robust <= 0.02, (clean, robust)
