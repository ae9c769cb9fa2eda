"""Stopping a run whose loss has blown up, as a NaN stops it.

A learning rate far too high sends the loss from ~2 to 100 and leaves it near 14:
every later step is wasted and the run would end as "finished". The guard compares
each step's loss with the run's starting level (the first step's loss: what the base
model scores before any update, which a blow-up at step 2 cannot spoil; kept across
resumes) and trips when it stays far above for several steps in a row. A single
spike, or a loss that wanders a little, never trips it. (Answers that slowly
break are the recall checks' to flag, not this guard's.)
"""

from __future__ import annotations

from dataclasses import dataclass

FACTOR = 3.0
MARGIN = 2.0
"""Blown up: above max(FACTOR x start, start + MARGIN). The margin keeps a run that starts at a
tiny loss (a resumed one, or data the base already knows) from tripping on ordinary noise."""
PATIENCE = 5
"""Consecutive steps above the limit before the run is stopped."""


@dataclass
class DivergenceGuard:
    reference: float | None = None
    """The starting level; None until the first step has been seen."""
    _above: int = 0

    @property
    def limit(self) -> float | None:
        if self.reference is None:
            return None
        return max(FACTOR * self.reference, self.reference + MARGIN)

    def diverged(self, loss: float) -> bool:
        """Record one step's loss; True when the run has blown up."""
        if self.reference is None:
            self.reference = loss
            return False
        self._above = self._above + 1 if loss > self.limit else 0
        return self._above >= PATIENCE

    def message(self, loss: float, step: int, learning_rate: float) -> str:
        return (f"the loss blew up: {loss:.3g} at step {step}, above {self.limit:.3g} for {PATIENCE} steps in a "
                f"row (it started near {self.reference:.3g}); training stopped. Lower "
                f"hyperparameters.learning_rate (now {learning_rate:g}), e.g. to a tenth, and train again")
