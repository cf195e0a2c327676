"""pykt's AKT trained on the same windows, for a side-by-side figure (never a GainAKT dependency).

    pip install --no-deps pykt-toolkit   # plus numpy, pandas, scikit-learn
    python docs/gpu/pykt_akt.py --root /path/to/assist2015/pykt [--epochs 1] [--bf16] [--max-batches N]

Loads pykt-toolkit's own ``pykt/models/akt.py`` (the AKT class, nothing else of pykt, whose package
imports tools such as wandb) and trains it as pykt's ``train_model`` does: ``model(c, r)`` on the
concepts and responses, BCE on ``torch.masked_select`` of the next-step predictions in float64,
Adam, and the loss read back to the host at every step. The windows are ours: ASSISTments 2015
fold 0 under the pykt protocol, padded to 200, 64 a batch. Prints one JSON document: real training
interactions per second over the last epoch (device waited for), and the epoch's seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.nn.functional import binary_cross_entropy

from gainakt.data.datamodule import KTDataModule
from gainakt.tools.pykt_reference import load_pykt_class


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="ASSISTments 2015, pykt form")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-blocks", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--d-ff", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--bf16", action="store_true", help="autocast to bf16 (pykt trains in float32)")
    parser.add_argument("--max-batches", type=int, default=None, help="stop each epoch early (a smoke test)")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    data = KTDataModule(format="pykt", root=args.root, fold=args.fold, window=200, min_length=3,
                        batch_size=args.batch_size, eval_batch_size=args.batch_size, batch_tokens=None,
                        eval_batch_tokens=None, bucketing=False, pad_multiple=1, shuffle_seed=0, pool_batches=50,
                        num_workers=0, cache_dir=None, synthetic=None, reader={})  # fmt: skip
    data.setup("fit")
    model = load_pykt_class("akt", "AKT")(n_question=data.num_skills, n_pid=0, d_model=args.d_model, n_blocks=args.n_blocks,
                             dropout=args.dropout, d_ff=args.d_ff, num_attn_heads=args.heads).to(device)  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = data.train_dataloader()
    epochs = []
    for epoch in range(args.epochs):
        loader.batch_sampler.sampler.set_epoch(epoch)
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, interactions, losses = time.perf_counter(), 0, []
        for index, batch in enumerate(loader):
            if args.max_batches is not None and index >= args.max_batches:
                break
            mask = batch["mask"].to(device)
            c = batch["skills"][..., 0].clamp_min(0).to(device)
            r = batch["responses"].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                y, reg_loss = model(c, r)
            sm = mask[:, 1:]
            loss = binary_cross_entropy(torch.masked_select(y[:, 1:].float(), sm).double(),
                                        torch.masked_select(r[:, 1:], sm).double()) + reg_loss  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach().cpu().numpy())  # pykt's train_model reads every loss back
            interactions += int(batch["mask"].sum())
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        epochs.append({"interactions": interactions, "seconds": seconds, "mean_loss": float(sum(losses) / len(losses))})
    last = epochs[-1]
    print(json.dumps({
        "model": "pykt AKT", "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "precision": "bf16 autocast" if args.bf16 else "float32", "args": vars(args),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_interactions_per_second": last["interactions"] / last["seconds"], "epochs": epochs,
    }, indent=1), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
