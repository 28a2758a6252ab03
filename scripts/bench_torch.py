"""The reference for scripts/bench: the same training as an aelab benchmark
experiment, written as ordinary PyTorch eager code (DataLoader, nn.Sequential,
torch.optim.Adam, loss.item() for logging). Prints one JSON line."""
import argparse
import gzip
import json
import os
import resource
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", choices=["mlp", "conv"], default="mlp")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(idx(os.path.join(a.data, "train-images-idx3-ubyte.gz")).copy()).float().div(255).unsqueeze(1)
    xt = torch.from_numpy(idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz")).copy()).float().div(255).unsqueeze(1)
    if a.limit:
        x = x[: a.limit]
    if a.model == "mlp":
        model = nn.Sequential(
            nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 32),
            nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 784), nn.Unflatten(1, (1, 28, 28)))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Upsample(size=(7, 7)),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Upsample(size=(14, 14)),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Upsample(size=(28, 28)),
            nn.Conv2d(16, 1, 3, padding=1))
    dev = torch.device(a.device)
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(x), batch_size=a.batch, shuffle=True)
    train_time = 0.0
    for epoch in range(a.epochs):
        model.train()
        t0 = time.perf_counter()
        total = 0.0
        for (xb,) in loader:
            xb = xb.to(dev)
            opt.zero_grad()
            loss = crit(model(xb), xb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        mse = sum(((torch.sigmoid(model(xb.to(dev))) - xb.to(dev)) ** 2).sum().item() for xb in xt.split(2048)) / xt.numel()
    print(json.dumps({
        "samples_per_s": len(x) * a.epochs / train_time,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "test_mse": mse,
        "train_loss": total / len(x),
    }))


if __name__ == "__main__":
    main()
