"""`tunewiz preview` and the Format step show one set of figures (tunewiz.training.preview)."""

from __future__ import annotations

import subprocess
import sys

from tunewiz.tui.background import preview_job


def test_the_cli_and_the_wizard_count_the_same_samples(make_project, tmp_path, tiny_model):
    pairs = [(f"What is the code of item {i}?", f"The code of item {i} is {i}.") for i in range(9)]
    pairs.append(("Tell me everything about item 99.", "Item 99 is described at length. " * 40))
    project = make_project(tmp_path / "proj", str(tiny_model), pairs,
                           **{"dataset.validation_fraction": 0.5, "template.max_seq_len": 64})
    from tunewiz.dataset import project_split

    train, validation = project_split(project)  # the split follows the pairs' ids
    assert train and validation
    cli = subprocess.run([sys.executable, "-m", "tunewiz", "preview", "-p", str(project.root)],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    summary = next(line for line in cli.stdout.splitlines() if line.startswith("All "))
    assert summary.startswith(f"All {len(train)} training and {len(validation)} validation pairs: 1 truncated, "
                              "0 dropped")  # the long pair, on whichever side of the split it fell
    assert "--- answer:" in cli.stdout and "trained on" in cli.stdout

    wizard = preview_job(str(project.root))
    assert (wizard["truncated"], wizard["dropped"]) == (1, 0)
    assert f"max {wizard['max_tokens']}" in summary

    wrong = subprocess.run([sys.executable, "-m", "tunewiz", "preview", "-p", str(project.root), "--index", "40"],
                           capture_output=True, text=True)
    assert wrong.returncode == 2
    assert f"--index 40: the project has {len(train)} training pairs (0 to {len(train) - 1})" in wrong.stderr
