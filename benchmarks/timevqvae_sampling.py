r"""Where TimeVQVAE's sample amplitude goes: a trained model's tokens, decoded several ways.

    # after a run (the quick default or a preset) has trained TimeVQVAE on PTB-XL:
    .venv/bin/python benchmarks/timevqvae_sampling.py --data results/data/ptbxl.h5 \
        --model results/generators/ptbxl/timevqvae/rep0/model.pt

Prints, as a share of the real held-out records' amplitude (mean per-lead standard deviation,
normalised units):
- the stage-1 reconstruction of held-out records (the ceiling any prior can reach);
- samples of the trained prior;
- per band, the decoded band's standard deviation from the training records' own tokens, from the
  prior's samples, and from the training tokens shuffled across records at each position (what a
  prior that knows only each position's token frequencies would make);
- a memorisation check: a copy of the prior fitted to --memorise records of one class for --steps
  steps, then sampled: how many of its tokens match one of those records, and its samples' amplitude.
  Sampling that works returns what such a prior has memorised, at the reconstructions' amplitude.
"""

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.data.leads import INDEPENDENT_LEADS, lead_indices  # noqa: E402
from synthecg.data.store import load_split, metadata  # noqa: E402
from synthecg.generators.training import load_generator  # noqa: E402

BANDS = ("lf", "hf")


def amplitude(x: torch.Tensor) -> float:
    return float(x.std(dim=2).mean())


def split_tokens(model, table: torch.Tensor) -> dict[str, torch.Tensor]:
    return dict(zip(BANDS, table.split([model.n_tokens["lf"], model.n_tokens["hf"]], dim=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the dataset HDF5 the model was trained on")
    parser.add_argument("--model", type=Path, required=True, help="a trained TimeVQVAE (model.pt)")
    parser.add_argument("--per-class", type=int, default=16, help="samples per class")
    parser.add_argument("--memorise", type=int, default=8, help="records of class 0 the prior copy is fitted to")
    parser.add_argument("--steps", type=int, default=1500, help="prior steps of the memorisation check")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    meta = metadata(args.data)
    model = load_generator(args.model, torch.device("cpu")).eval()
    rows = lead_indices(INDEPENDENT_LEADS, meta["leads"]) if model.n_leads == len(INDEPENDENT_LEADS) else slice(None)
    train, held_out = (load_split(args.data, split, normalised=True) for split in ("train", "val"))
    x_train, x_held = (torch.as_tensor(s["x"][:, rows]) for s in (train, held_out))
    y_train = torch.as_tensor(train["y"]).long()
    real = amplitude(x_held)
    classes = torch.arange(len(meta["classes"])).repeat_interleave(args.per_class)
    with torch.no_grad():
        print(f"stage-1 reconstruction of held-out records  {amplitude(model.reconstruct(x_held)) / real:.2f}")
        print(f"samples of the trained prior                 "
              f"{amplitude(model.sample(classes, torch.Generator().manual_seed(args.seed))) / real:.2f}")
        own = split_tokens(model, model.token_table(x_train))
        sampled = model.sample_tokens(y_train, torch.Generator().manual_seed(args.seed))
        rng = np.random.default_rng(args.seed)
        for band in BANDS:
            shuffled = torch.stack([column[torch.as_tensor(rng.permutation(len(column)))] for column in own[band].T], 1)
            print(f"{band.upper()} band std: records' own tokens {amplitude(model._decode_tokens(own[band], band)):.3f}, "
                  f"sampled {amplitude(model._decode_tokens(sampled[band], band)):.3f}, "
                  f"shuffled across records per position {amplitude(model._decode_tokens(shuffled, band)):.3f}")

    # Memorisation: a copy of the prior fitted to a handful of records, without dropout or the null class.
    memoriser = copy.deepcopy(model)
    memoriser.config = type(model.config)(**{**model.config.__dict__, "p_uncond": 0.0})
    chosen = torch.nonzero(y_train == 0)[: args.memorise, 0]
    table, y = memoriser.token_table(x_train[chosen]), y_train[chosen]
    optimizer = torch.optim.AdamW(memoriser.priors.parameters(), lr=1e-3)
    memoriser.train()
    for _ in range(args.steps):
        loss = memoriser.loss(table, y, "prior")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    memoriser.eval()
    with torch.no_grad():
        known, drawn = split_tokens(memoriser, table), memoriser.sample_tokens(y, torch.Generator().manual_seed(args.seed))
        for band in BANDS:
            match = (drawn[band][:, None] == known[band][None]).float().mean(-1).max(1).values
            print(f"memorised ({len(y)} records, {args.steps} steps, loss {loss.item():.2f}): {band.upper()} tokens "
                  f"matching one of them {match.min():.2f}-{match.max():.2f}")
        x = memoriser.sample(y, torch.Generator().manual_seed(args.seed))
        print(f"memorised samples' amplitude against those records {amplitude(x) / amplitude(x_train[chosen]):.2f}, "
              f"their reconstructions' {amplitude(memoriser.reconstruct(x_train[chosen])) / amplitude(x_train[chosen]):.2f}")


if __name__ == "__main__":
    main()
