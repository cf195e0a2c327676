"""Config mistakes typed on the command line end with the project's one-line message and exit code 2."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("model.dmodel=32", "model.dmodel: unknown key; did you mean model.d_model?"),  # Hydra rejects it
        ("+model.dmodel=32", "model.dmodel: unknown key; did you mean model.d_model?"),  # added, then checked
        ("model.lr=-1", "model.lr: unknown key; lr is set as optim.lr"),
        ("+callbacks.early_stopping.patiense=3", "callbacks.early_stopping.patiense: unknown key; did you mean "
                                                 "callbacks.early_stopping.patience?"),  # fmt: skip
        ("optim.lr=-1", "optim.lr=-1: expected a number in (0.0, ∞)"),
        ("model.recurrent_enc1=-1", "model.recurrent_enc1=-1: expected an integer >= 0"),  # a width, not a bool
        ("model.teacher_share=1.5", "model.teacher_share=1.5: expected a number in [0.0, 1.0]"),
        ("data.batch_tokens=0", "data.batch_tokens=0: expected auto or an integer >= 1"),
        ("data.synthetic.process=irt", "data.synthetic.process='irt': expected mastery_curve | afm"),
        ("data=nope", "Could not find 'data/nope' Available options in 'data': algebra2005"),
    ],
)
def test_config_mistake_is_one_line_naming_the_key(override, says, tmp_path):
    done = run_cli("gainakt.train", [override, "trainer.max_epochs=1"], cwd=tmp_path, timeout=120)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and says in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
