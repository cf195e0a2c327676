"""Lightning's TQDM progress bar, drawn on stderr.

Lightning draws its bars on stdout; keeping them on stderr leaves stdout to the summary table and
the ``Run folder:`` lines, so scripts can read the run folder from the last line of stdout.
"""

from __future__ import annotations

import contextlib
import sys

from lightning.pytorch.callbacks import TQDMProgressBar


def _on_stderr(name: str):
    def make_bar(self: TQDMProgressBar):
        with contextlib.redirect_stdout(sys.stderr):
            return getattr(TQDMProgressBar, name)(self)

    make_bar.__name__ = name
    return make_bar


class StderrProgressBar(TQDMProgressBar):
    init_sanity_tqdm = _on_stderr("init_sanity_tqdm")
    init_train_tqdm = _on_stderr("init_train_tqdm")
    init_validation_tqdm = _on_stderr("init_validation_tqdm")
    init_predict_tqdm = _on_stderr("init_predict_tqdm")
    init_test_tqdm = _on_stderr("init_test_tqdm")
