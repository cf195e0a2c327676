"""A DKT reference trained on exactly GainAKT's windows and split, for "encoder 1 beside DKT".

    pip install --no-deps pykt-toolkit      # never a GainAKT dependency
    python -m gainakt.tools.pykt_reference data=assist2009 data.root=/path/to/assist2009/akt_pid_5fold data.fold=0

The arguments are GainAKT's own Hydra overrides: the data module is built from the same config as
``python -m gainakt.train`` would build it, so the reference sees the same windows, the same
validation fold and the same test split, is trained on the same batches (by default token budgets,
in which every answer weighs the same, as in pykt's random batches) and is scored on the same steps
(every step of a window but its first). The model is pykt-toolkit's own ``pykt/models/dkt.py``
(loaded alone: pykt's package imports tools such as wandb), trained as pykt trains DKT:
``emb_size`` 200, dropout 0.2, Adam at 1e-3, up to 200 epochs, stopping after 10 without a better
validation AUC; the test split is scored once, with the best validation epoch's weights (AUC,
accuracy and the share of steps predicted wrong, as ``verification.json`` reports encoder 2's).
Prints one JSON document.

DKT takes one skill per step: a multi-skill step (a question with several skills, kept as one
interaction by ``data.reader.merge_skill_rows``) enters and is scored as its first skill.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from torch.nn.functional import binary_cross_entropy

from gainakt.data.datamodule import KTDataModule
from gainakt.errors import GainAKTError
from gainakt.run.config import compose_config
from gainakt.run.config_check import check_config, config_errors
from gainakt.run.lifecycle import EXIT_CODES
from gainakt.verification.checks import (
    accuracy, auc, or_none, share_predicted_wrong, share_predicted_wrong_recalibrated,
)  # fmt: skip


def load_pykt_class(module: str, name: str) -> type:
    """``name`` from ``pykt/models/<module>.py`` without running pykt's package ``__init__``."""
    spec = importlib.util.find_spec("pykt")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pykt-toolkit is not installed: pip install --no-deps pykt-toolkit")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / f"{module}.py"
    module_spec = importlib.util.spec_from_file_location(f"pykt_{module}", path)
    loaded = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(loaded)
    return getattr(loaded, name)


def next_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """DKT's prediction of every scored step (a window's steps but its first) and its answer."""
    skills = batch["skills"][..., 0].clamp_min(0)
    responses = batch["responses"]
    y = model(skills, responses)  # [B, L, num_c]: step t's output predicts every skill at t+1
    p = torch.gather(y[:, :-1], 2, skills[:, 1:, None])[..., 0]
    scored = batch["mask"][:, 1:]
    return p[scored], responses[:, 1:][scored].float()


def predict(model: torch.nn.Module, loader) -> tuple[np.ndarray, np.ndarray]:
    """DKT's probability and the answer of every scored step of ``loader``."""
    model.eval()
    preds, targets = [], []
    with torch.no_grad():
        for batch in loader:
            p, y = next_step(model, batch)
            preds.append(p)
            targets.append(y)
    return torch.cat(preds).numpy(), torch.cat(targets).numpy()


def score_test_split(model: torch.nn.Module, loader, validation: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """The test split scored as GainAKT scores its encoders: AUC, accuracy, and the share of steps
    predicted wrong (p < 0.5) beside the share answered right, so encoder 2's "not mastered" share
    reads beside a reference's; also that share recalibrated on the validation split, and the
    validation split's mean prediction beside its share right (the bias the raw share carries).
    ``validation``: the model's (prob, label) on the validation split, as :func:`predict` gives them."""
    prob, label = predict(model, loader)
    val_prob, val_label = validation
    return {"test_auc": auc(prob, label), "test_acc": accuracy(prob, label),
            "test_share_predicted_wrong": share_predicted_wrong(prob), "test_share_correct": float(label.mean()),
            "test_share_predicted_wrong_recalibrated": or_none(
                lambda: share_predicted_wrong_recalibrated(val_prob, val_label, prob)),  # null where no fit converges
            "val_mean_prob": float(val_prob.mean()), "val_share_correct": float(val_label.mean())}  # fmt: skip


def train(data: KTDataModule, args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    model = load_pykt_class("dkt", "DKT")(num_c=data.num_skills, emb_size=args.emb_size, dropout=args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader, val_loader = data.train_dataloader(), data.val_dataloader()
    best = {"val_auc": -1.0, "epoch": -1, "state": None, "val": None}
    history = []
    for epoch in range(args.max_epochs):
        loader.batch_sampler.sampler.set_epoch(epoch)
        model.train()
        start, losses = time.perf_counter(), []
        for batch in loader:
            p, y = next_step(model, batch)
            loss = binary_cross_entropy(p.double(), y.double())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        val = predict(model, val_loader)
        val_auc = auc(*val)
        history.append({"epoch": epoch, "train_loss": float(torch.stack(losses).mean()), "val_auc": val_auc,
                        "seconds": time.perf_counter() - start})  # fmt: skip
        print(f"epoch {epoch}: val AUC {val_auc:.4f} ({history[-1]['seconds']:.0f} s)", file=sys.stderr, flush=True)
        if val_auc > best["val_auc"]:
            best = {"val_auc": val_auc, "epoch": epoch, "state": copy.deepcopy(model.state_dict()), "val": val}
        elif epoch - best["epoch"] >= args.patience:
            break
    model.load_state_dict(best["state"])
    return {"best_epoch": best["epoch"], "epochs": len(history), "val_auc": best["val_auc"],
            **score_test_split(model, data.test_dataloader(), best["val"]), "history": history}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="GainAKT Hydra overrides, e.g. data=assist2009 data.root=...")
    parser.add_argument("--emb-size", type=int, default=200)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    try:
        cfg = compose_config("config", args.overrides)
        check_config(cfg)
        data: KTDataModule = instantiate(cfg.data)
        data.setup("fit")
    except GainAKTError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CODES["failed"])
    result = train(data, args)
    result.update({"model": "pykt DKT", "overrides": args.overrides, "num_skills": data.num_skills,
                   "settings": {k: v for k, v in vars(args).items() if k != "overrides"}})  # fmt: skip
    print(json.dumps(result, indent=1), flush=True)


if __name__ == "__main__":
    with config_errors("config"):
        main()
