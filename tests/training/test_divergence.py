"""The divergence guard on loss sequences: a blow-up stops the run, ordinary noise never does."""

from __future__ import annotations

from tunewiz.training.divergence import PATIENCE, DivergenceGuard


def first_trip(losses: list[float], reference: float | None = None) -> int | None:
    guard = DivergenceGuard(reference=reference)
    return next((step for step, loss in enumerate(losses, start=1) if guard.diverged(loss)), None)


def test_a_blow_up_that_stays_high_trips_after_patience_steps():
    losses = [2.25, 115.0, 40.0, 14.0, 14.2, 13.9, 14.1, 14.0]  # benchmarks' run at learning rate 1.0
    assert first_trip(losses) == 1 + PATIENCE


def test_a_single_spike_and_a_normal_run_do_not_trip():
    falling = [3.0 - 0.05 * i for i in range(50)]
    assert first_trip(falling) is None
    assert first_trip([2.0, 2.1, 1.9, 30.0, 1.8, 1.7, 25.0, 1.6] * 5) is None


def test_a_resumed_run_at_a_tiny_loss_needs_more_than_noise():
    assert first_trip([0.05, 0.4, 0.6, 0.3] * 10, reference=0.05) is None  # below start + margin
    assert first_trip([9.0] * PATIENCE, reference=0.05) == PATIENCE
