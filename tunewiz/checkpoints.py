"""Checkpoints of a run: ranked by what the run taught, overfitting and drift flagged, one picked.

Reads only the run folder (metrics.jsonl, run.json, checkpoints/*/COMPLETE), so
`tunewiz checkpoints` is fast and never imports torch.

The pick follows the kind of data (run.json `kind`):
- facts: the most reworded questions recalled (a held-out fact can never be learned, so
  validation loss says nothing there), counting as a tie what is within the check's noise
  (one question in 16 asked); ties go to the least drift on everyday prompts, then to the
  latest step (questions in new words are recalled more with more training: docs/train.md).
  Overfitting is reworded recall falling while trained recall holds, or answers to everyday
  prompts breaking.
- skill: the lowest validation loss among checkpoints that did not drift. Overfitting is
  validation loss rising at K evaluations in a row while train loss fell over the same
  stretch; it "began" at the first evaluation that rose.
Train loss of a checkpoint is the mean of the losses logged since the previous checkpoint
(one step's loss is too noisy to compare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewiz.errors import TunewizError
from tunewiz.project import Project
from tunewiz.runs import COMPLETE_MARKER, Run, RunSpec, find_run

DEFAULT_PATIENCE = 3


# ---------------------------------------------------------------- the run's config snapshot

def read_run_config(run: Run) -> RunSpec:
    """The run's spec, checked for what export, sampling and chat need: the base model folder
    (made absolute) and the resolved template family."""
    spec = run.read_spec()
    if not spec.base_dir:
        raise TunewizError(f"{run.config_path}: no 'base_dir' (the base model folder the run trained on)")
    if not isinstance(spec.family, str) or not spec.family:
        raise TunewizError(f"{run.config_path}: no template family (the chat template the run trained with)")
    if not spec.base_path.is_absolute():
        spec.base_dir = str(run.dir / spec.base_dir)
    return spec


# ---------------------------------------------------------------- ranking

@dataclass
class Score:
    """k of n questions recalled."""

    recalled: int
    total: int

    @property
    def fraction(self) -> float:
        return self.recalled / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.recalled}/{self.total}"


@dataclass
class Drift:
    """How the everyday prompts were answered, beside the base model."""

    broken: int
    total: int
    changed: float
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        """Broken answers where the base model answered: a quarter of the prompts, at least two."""
        return self.broken >= max(2, self.total / 4)


@dataclass
class CheckpointInfo:
    step: int
    path: Path
    epoch: float | None = None
    train_loss: float | None = None
    """Mean train loss over the steps since the previous checkpoint."""
    val_loss: float | None = None
    trained: Score | None = None
    """Trained questions recalled (asked as trained)."""
    reworded: Score | None = None
    """Reworded questions of trained facts recalled."""
    drift: Drift | None = None
    misses: list[dict[str, str]] = field(default_factory=list)
    """Questions not recalled: set, question, reference, answer."""
    best: bool = False
    overfit: bool = False
    """Saved after overfitting began, or drifted itself."""


@dataclass
class Overfit:
    began_at: int
    """Step of the first checkpoint (or evaluation) where it showed."""
    detected_at: int
    """Step where the rule saw it."""
    reason: str = ""
    steps: list[int] | None = None
    """The checkpoints it concerns (drift: the drifted ones); None: every one from `began_at` on."""

    def concerns(self, step: int) -> bool:
        return step in self.steps if self.steps is not None else step >= self.began_at

    def describe(self, patience: int) -> str:
        if self.reason:
            return self.reason
        return (f"overfitting: validation loss rose for {patience} evaluations in a row while train loss "
                f"fell, from step {self.began_at} (seen at step {self.detected_at})")


@dataclass
class CheckpointReport:
    run: Run
    checkpoints: list[CheckpointInfo]
    """Complete checkpoints, by step."""
    best: CheckpointInfo | None
    overfit: Overfit | None
    patience: int
    incomplete: list[Path] = field(default_factory=list)
    """Checkpoint folders without the completion marker (cut short; ignored)."""
    note: str = ""
    kind: str = "skill"
    """What the run taught: 'facts' or 'skill' (run.json; runs from before it: skill)."""
    reason: str = ""
    """One line: why `best` is the best."""
    base: CheckpointInfo | None = None
    """The base model's recall and everyday answers (step 0), when the run checked them."""
    caveat: str = ""
    """What the recall figures do not show (e.g. rewordings made by rules read high)."""

    def by_step(self, step: int) -> CheckpointInfo | None:
        return next((c for c in self.checkpoints if c.step == step), None)


@dataclass
class _Eval:
    step: int
    epoch: float | None
    val_loss: float
    train_loss: float | None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _train_losses(metrics: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, loss) of the train records with a finite loss."""
    out = [(int(m["step"]), _finite(m.get("loss"))) for m in metrics if m.get("type") == "train" and "step" in m]
    return [(step, loss) for step, loss in out if loss is not None]


def _mean_loss(train: list[tuple[int, float]], after: int, upto: int) -> float | None:
    losses = [loss for step, loss in train if after < step <= upto]
    return sum(losses) / len(losses) if losses else None


def _evaluations(metrics: list[dict[str, Any]]) -> list[_Eval]:
    """Eval records by step, each with the mean train loss logged since the previous one."""
    train = _train_losses(metrics)
    evals = sorted((m for m in metrics if m.get("type") == "eval" and "step" in m
                    and _finite(m.get("val_loss")) is not None), key=lambda m: int(m["step"]))
    out: list[_Eval] = []
    previous = -1
    for record in evals:
        step = int(record["step"])
        if out and out[-1].step == step:
            continue  # a resumed run may log an evaluation twice
        out.append(_Eval(step=step, epoch=_finite(record.get("epoch")), val_loss=float(record["val_loss"]),
                         train_loss=_mean_loss(train, previous, step)))
        previous = step
    return out


def _score(value: Any) -> Score | None:
    if isinstance(value, dict) and isinstance(value.get("recalled"), int) and isinstance(value.get("total"), int):
        return Score(value["recalled"], value["total"]) if value["total"] > 0 else None
    return None


def _drift(value: Any) -> Drift | None:
    if not isinstance(value, dict) or not isinstance(value.get("total"), int) or not value["total"]:
        return None
    return Drift(int(value.get("broken", 0)), value["total"], float(value.get("changed", 0.0)),
                 list(value.get("examples") or []))


def _apply_checks(info: CheckpointInfo, record: dict[str, Any]) -> None:
    info.trained, info.reworded = _score(record.get("trained")), _score(record.get("reworded"))
    info.drift = _drift(record.get("general"))
    info.misses = [m for m in record.get("misses") or [] if isinstance(m, dict)]


def detect_overfit(evals: list[_Eval], patience: int) -> Overfit | None:
    """The first stretch of `patience` rising validation losses during falling train loss."""
    if patience < 1:
        raise ValueError("patience must be at least 1")
    for end in range(patience, len(evals)):
        window = evals[end - patience:end + 1]
        rising = all(b.val_loss > a.val_loss for a, b in zip(window, window[1:]))
        first, last = window[0].train_loss, window[-1].train_loss
        falling = first is not None and last is not None and last < first
        if rising and falling:
            return Overfit(began_at=window[1].step, detected_at=window[-1].step)
    return None


def detect_fact_overfit(checkpoints: list[CheckpointInfo]) -> Overfit | None:
    """Facts: reworded recall falling while trained recall holds or rises, or answers drifting.

    A fall counts when it is at least two questions and a tenth of the set below the best so far."""
    best: CheckpointInfo | None = None
    for index, info in enumerate(checkpoints):
        if info.drift and info.drift.drifted:
            # Each drifted checkpoint by name: a later one may have recovered (and be the pick).
            drifted = [c for c in checkpoints[index:] if c.drift and c.drift.drifted]
            named = ", ".join(f"{c.step} ({c.drift.broken}/{c.drift.total} broken)" for c in drifted)
            return Overfit(info.step, info.step, "drift: the model breaks on everyday prompts at "
                                                 f"step{'s' if len(drifted) > 1 else ''} {named}",
                           steps=[c.step for c in drifted])
        if info.reworded is None:
            continue
        if best is not None and best.reworded is not None:
            fall = best.reworded.recalled - info.reworded.recalled
            holds = info.trained is None or best.trained is None or info.trained.recalled >= best.trained.recalled
            if fall >= max(2, 0.1 * info.reworded.total) and holds:
                return Overfit(info.step, info.step,
                               f"overfitting: reworded recall fell from {best.reworded} (step {best.step}) to "
                               f"{info.reworded} at step {info.step} while trained recall held")
        if best is None or best.reworded is None or info.reworded.recalled > best.reworded.recalled:
            best = info
    return None


def rank_checkpoints(run: Run, patience: int = DEFAULT_PATIENCE) -> CheckpointReport:
    """Every complete checkpoint with its losses and checks; the best for the run's kind of data marked."""
    metrics = run.metrics()
    evals = _evaluations(metrics)
    train = _train_losses(metrics)
    eval_at = {e.step: e for e in evals}
    checks = {int(m["step"]): m for m in metrics if m.get("type") == "recall" and isinstance(m.get("step"), int)}
    train_epochs = {int(m["step"]): _finite(m.get("epoch")) for m in metrics
                    if m.get("type") == "train" and "step" in m}
    kind = _run_kind(run)

    checkpoints = []
    previous = 0
    for path in run.complete_checkpoints():
        step = int(path.name.rsplit("-", 1)[1])
        info = CheckpointInfo(step=step, path=path, train_loss=_mean_loss(train, previous, step))
        evaluation = eval_at.get(step)
        info.epoch = evaluation.epoch if evaluation else train_epochs.get(step)
        info.val_loss = evaluation.val_loss if evaluation else None
        if step in checks:
            _apply_checks(info, checks[step])
        checkpoints.append(info)
        previous = step
    base = None
    if 0 in checks:
        base = CheckpointInfo(step=0, path=run.dir)
        _apply_checks(base, checks[0])

    incomplete = []
    if run.checkpoints_dir.is_dir():
        incomplete = [p for p in run.checkpoint_folders() if not (p / COMPLETE_MARKER).exists()]

    if kind == "facts":
        overfit = detect_fact_overfit(checkpoints)
        best, reason, note = _pick_facts(checkpoints)
    else:
        overfit = detect_overfit(evals, patience)
        best, reason, note = _pick_skill(checkpoints)
    if overfit:
        for info in checkpoints:
            info.overfit = overfit.concerns(info.step)
    if best:
        best.best = True
    return CheckpointReport(run=run, checkpoints=checkpoints, best=best, overfit=overfit, patience=patience,
                            incomplete=incomplete, note=note, kind=kind, reason=reason, base=base,
                            caveat=_rewording_caveat(run, best) if kind == "facts" else "")


RULES_CAVEAT = ("{rules} of {total} reworded questions were made by rules and keep the question's words; "
                "new words are recalled less (a benchmark: 55-70 % where rules read 90-100 %). Truer: "
                "`tunewiz rewordings --generate` or `--import FILE`, then train again.")
TRAIN_REWORDED_ADVICE = ("To recall more in new words, train each question in other words too "
                         "(`tunewiz rewordings --generate --train`, a capable generator; or `--import FILE --train`).")


def _rewording_caveat(run: Run, best: CheckpointInfo | None) -> str:
    """Said when most reworded questions of a run came from rules (run.json's evaluation.reworded_sources),
    and, when the run trained no rewordings, how to recall more in new words (when rules read high, or the
    best checkpoint recalled fewer reworded questions than trained ones)."""
    try:
        spec = run.read_spec()
    except TunewizError:
        return ""
    sources = spec.evaluation.get("reworded_sources") or {}
    total, rules = sum(sources.values()), sources.get("rules", 0)
    mostly_rules = bool(total) and rules * 2 > total
    said = [RULES_CAVEAT.format(rules=rules, total=total)] if mostly_rules else []
    trained_rewordings = (spec.plan or {}).get("train_rewordings", 0)
    fewer = bool(best and best.reworded and best.trained and best.reworded.fraction < best.trained.fraction)
    if not trained_rewordings and (mostly_rules or fewer):
        said.append(TRAIN_REWORDED_ADVICE)
    return " ".join(said)


def _run_kind(run: Run) -> str:
    if not run.config_path.exists():  # a folder not written by the trainer: judge by loss
        return "skill"
    kind = run.read_spec().kind  # a damaged run.json is an error that names it, not a silent loss pick
    return kind if kind in ("facts", "skill") else "skill"


def _drift_text(info: CheckpointInfo) -> str:
    if info.drift is None:
        return ""
    if not info.drift.broken:
        return f"everyday prompts intact ({info.drift.total}/{info.drift.total})"
    return f"{info.drift.broken}/{info.drift.total} everyday prompts broken"


REWORDED_NOISE = 16
"""Reworded questions asked per question of tolerance: a checkpoint within one of 16 (two of 32) of the most
recalled ties with it. Rule rewordings saturate late in a run (16/16 from 60 % of it), while questions in
words the training never used are recalled more the longer it trains; ties going to the latest step picked
154 hand-reworded questions of 320 over eight runs of benchmarks/recall.py, against 146 when they went to the
most trained questions recalled and then the earliest step (docs/train.md)."""


def _pick_facts(checkpoints: list[CheckpointInfo]) -> tuple[CheckpointInfo | None, str, str]:
    """Most reworded questions recalled, within the check's noise, among the checkpoints that did not drift
    (facts are taught to a model that must still answer everything else: a drifted one is picked only when
    all drifted); ties: least drift, then the latest."""
    if not checkpoints:
        return None, "", ""
    scored = [c for c in checkpoints if c.reworded or c.trained]
    if not scored:
        latest = checkpoints[-1]
        return latest, f"step {latest.step}: the latest (this run recorded no recall checks)", \
            "no recall checks were recorded: 'best' is the latest checkpoint"

    by_reworded = any(c.reworded for c in scored)  # else (no reworded questions) by trained recall

    def recalled(c: CheckpointInfo) -> int:
        score = c.reworded if by_reworded else c.trained
        return score.recalled if score else 0

    steady = [c for c in scored if not (c.drift and c.drift.drifted)]
    pool = steady or scored
    top = max(pool, key=lambda c: (recalled(c), c.step))
    asked = (top.reworded if by_reworded else top.trained).total  # type: ignore[union-attr]
    tolerance = asked // REWORDED_NOISE
    ties = [c for c in pool if recalled(c) >= recalled(top) - tolerance]
    best = min(ties, key=lambda c: (c.drift.broken if c.drift else 0, -c.step))
    parts = []
    if best.reworded:
        some_drifted = steady and len(steady) < len(scored)
        scope = (f"the {len(steady)} checkpoints that kept everyday answers" if some_drifted else "any checkpoint")
        if top.reworded and best.reworded.recalled < top.reworded.recalled:
            among = (f"within {tolerance} of the most of {scope}, {top.reworded} at step {top.step}: "
                     "the latest of those")
        else:
            among = f"most of {scope}"
        parts.append(f"recalled {best.reworded} reworded questions ({among})")
    if best.trained:
        parts.append(f"{best.trained} trained")
    if best.drift:
        parts.append(_drift_text(best))
    return best, f"step {best.step}: " + ", ".join(parts), ""


def _pick_skill(checkpoints: list[CheckpointInfo]) -> tuple[CheckpointInfo | None, str, str]:
    """Lowest validation loss among the checkpoints that did not drift."""
    if not checkpoints:
        return None, "", ""
    scored = [c for c in checkpoints if c.val_loss is not None]
    if not scored:
        latest = checkpoints[-1]
        return latest, f"step {latest.step}: the latest (no validation loss was recorded)", \
            "no validation loss was recorded (no validation pairs?): 'best' is the latest checkpoint"
    steady = [c for c in scored if not (c.drift and c.drift.drifted)]
    best = min(steady or scored, key=lambda c: (c.val_loss, c.step))
    reason = f"step {best.step}: lowest validation loss ({best.val_loss:.4f})"
    if len(steady) < len(scored):
        reason += f" among the {len(steady)} checkpoints that kept everyday answers"
    if best.drift:
        reason += f"; {_drift_text(best)}"
    return best, reason, ""


# ---------------------------------------------------------------- picking

def parse_pick(text: str) -> str:
    """'best' or a step number, normalised; raises TunewizError otherwise."""
    text = str(text).strip().lower()
    if text == "best":
        return text
    if text.startswith("checkpoint-"):
        text = text[len("checkpoint-"):]
    if not text.isdigit():
        raise TunewizError(f"a checkpoint pick is 'best' or a step number, got {text!r}")
    return str(int(text))


def select_checkpoint(report: CheckpointReport, pick: str) -> CheckpointInfo:
    """The checkpoint a pick names, or a clear error (incomplete, missing, none at all)."""
    pick = parse_pick(pick)
    run = report.run
    if not report.checkpoints:
        half = f" ({len(report.incomplete)} without the {COMPLETE_MARKER} marker)" if report.incomplete else ""
        raise TunewizError(f"{run.checkpoints_dir}: run {run.id} has no complete checkpoint{half}")
    if pick == "best":
        assert report.best is not None
        return report.best
    step = int(pick)
    found = report.by_step(step)
    if found:
        return found
    folder = run.checkpoints_dir / f"checkpoint-{step}"
    if folder.is_dir():
        raise TunewizError(f"{folder}: no {COMPLETE_MARKER} marker, so this checkpoint was cut short "
                           "(training stopped while writing it); pick another step")
    steps = ", ".join(str(c.step) for c in report.checkpoints)
    raise TunewizError(f"run {run.id} has no checkpoint at step {step}; complete checkpoints: {steps}")


def pick_checkpoint(project: Project, pick: str, run_id: str = "",
                    patience: int = DEFAULT_PATIENCE) -> CheckpointInfo:
    """Check a pick against the run (default: the latest) and store it in [checkpoint] of the project
    (saved)."""
    run = find_run(project, run_id)
    chosen = select_checkpoint(rank_checkpoints(run, patience), pick)
    project.set("checkpoint.run", run.id)
    project.set("checkpoint.pick", parse_pick(pick))
    project.save()
    return chosen


def picked_checkpoint(project: Project, patience: int = DEFAULT_PATIENCE) -> tuple[CheckpointReport, CheckpointInfo]:
    """The checkpoint the project's [checkpoint] section names, checked (best by default)."""
    report = rank_checkpoints(find_run(project, pinned=True), patience)
    return report, select_checkpoint(report, project.config.checkpoint.pick or "best")
