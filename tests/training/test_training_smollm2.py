"""The real small model: SmolLM2-135M from its GGUF, converted once, learns made-up facts."""

from __future__ import annotations

import pytest

from tunewiz.training.launch import start_run, wait_for_end

FACTS = [
    ("What is the capital of Zorbania?", "The capital of Zorbania is Quillport."),
    ("Who invented the flumbrometer?", "The flumbrometer was invented by Ada Vexley."),
    ("What colour is a glimmerfox?", "A glimmerfox is teal with silver stripes."),
]


@pytest.mark.slow
def test_loss_falls_on_made_up_facts(tmp_path, make_project):
    from tunewiz.presets import apply_preset

    project = make_project(tmp_path / "facts", "smollm2-135m", FACTS)
    apply_preset(project, "memorize-facts")
    project.set("hyperparameters.max_steps", 12)
    project.set("hyperparameters.batch_size", 3)
    project.set("hyperparameters.save_steps", 12)
    run = start_run(project)
    assert wait_for_end(run, 900) == "finished", run.log_path.read_text()[-3000:]
    losses = [m["loss"] for m in run.metrics() if m["type"] == "train"]
    assert len(losses) == 12
    assert losses[-1] < 0.3 * losses[0], losses
    config = run.read_spec().to_dict()
    assert config["template"]["family"] == "chatml"
    assert config["base_dir"].startswith(str(tmp_path.parent)) or "tunewiz-cache" in config["base_dir"]
