"""Data-layer benchmark: loading Fashion-MNIST from the .gz files, and batches resized to 224 px.

Compares, in one run on one machine, nin_lib's on-device batch iterator (whole batches resized as
tensors) with the book's pipeline (torchvision dataset + Resize + ToTensor + DataLoader, 4 workers).

    python benchmarks/data_bench.py [--batches 40] [--batch-size 128] [--resize 224] [--device cpu] [--json out.json]
"""
import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import date

import torch

from nin_lib import data, runtime


def time_load(repeats=3):
    """Best-of-``repeats`` seconds to load all 70,000 images and labels (checksums included)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ds = data.load_fashion_mnist(allow_download=False)
        best = min(best, time.perf_counter() - start)
    assert len(ds.train_images) + len(ds.test_images) == 70000
    return best


def images_per_second(batch_iter, num_batches, device):
    """Images/s over ``num_batches`` batches, after one warm-up batch; each batch is made to land on ``device``."""
    it = iter(batch_iter)
    next(it)  # warm-up: worker start-up for the DataLoader, first allocation for ours
    start, count = time.perf_counter(), 0
    for _, (X, y) in zip(range(num_batches), it):
        X = X.to(device, non_blocking=True)
        count += X.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--resize", type=int, default=224)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers of the book's pipeline (d2l uses 4)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    device = runtime.pick_device(args.device)

    load_s = time_load()
    ds = data.load_fashion_mnist(allow_download=False)
    ours = data.batches("train", args.batch_size, data=ds, shuffle=True, resize=args.resize, device=device)
    ours_ips = images_per_second(ours, args.batches, device)
    with tempfile.TemporaryDirectory() as cache:
        book_train, _ = data.d2l_style_loaders(args.batch_size, resize=args.resize, num_workers=args.workers, cache=cache)
        book_ips = images_per_second(book_train, args.batches, device)

    result = {
        "load_all_70000_s": round(load_s, 3),
        "nin_lib_images_per_s": round(ours_ips),
        "d2l_style_images_per_s": round(book_ips),
        "ratio": round(ours_ips / book_ips, 2),
        "batch_size": args.batch_size, "resize": args.resize, "batches": args.batches, "workers": args.workers,
        "device": runtime.describe_device(device),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}, torch {torch.__version__}",
        "date": date.today().isoformat(),
        "command": "python benchmarks/data_bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    for k, v in result.items():
        print(f"{k}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
