"""Fashion-MNIST (all lessons): find the four IDX ``.gz`` files (``NIN_DATA_DIR``, read-only is fine, or a per-user
cache), download missing ones, check and load them; serve batches on the training device."""
import gzip
import http.client
import math
import os
import shutil
import urllib.request
import zlib
from collections import namedtuple
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checks
from .runtime import atomic_path

DATA_ENV = "NIN_DATA_DIR"
# d2l's names (d2l.get_fashion_mnist_labels), in label order 0..9.
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
SPLIT_SIZES = {"train": 60_000, "test": 10_000}  # images in each split: use these, never the numbers

FILES = {  # name -> (file, published MD5, size in bytes)
    "train-images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
    "train-labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515),
    "test-images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102),
    "test-labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148)}
MAGIC = {"images": 0x803, "labels": 0x801}  # IDX: unsigned bytes, 3 dimensions (images) or 1 (labels)
REPLACE = "delete it so that it is downloaded again, or replace it with the original file"

FashionMNIST = namedtuple("FashionMNIST", "train_images train_labels test_images test_labels")


class DataError(checks.Refusal):
    """A data file or folder is missing, unreadable or corrupt: the user's to fix, so the message says how."""


def default_cache_dir():
    """The per-user folder used when ``NIN_DATA_DIR`` is not set."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nin-notebooks" / "fashion-mnist"


def data_dir(path=None):
    """The data folder: ``path``, else ``NIN_DATA_DIR``, else the cache; readable if it exists (else made later)."""
    env = os.environ.get(DATA_ENV, "").strip()
    path = Path(path) if path is not None else Path(env).expanduser() if env else default_cache_dir()
    if path.exists() and not path.is_dir():
        raise DataError(f"the data folder {str(path)!r} is a file, not a folder; "
                        f"point {DATA_ENV} at a folder that holds the Fashion-MNIST .gz files.")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise DataError(f"the data folder {str(path)!r} cannot be read (permission denied); "
                        f"make it readable or point {DATA_ENV} at another folder.")
    return path


def mirrors():
    """Download addresses, from torchvision's FashionMNIST resources."""
    from torchvision.datasets import FashionMNIST as TVFashionMNIST
    return list(TVFashionMNIST.mirrors)


def check_file(path, name):
    """``path`` if it is the published file ``name``: its size, then its MD5; else DataError saying how to fix it."""
    from torchvision.datasets.utils import check_integrity
    filename, md5, size = FILES[name]
    actual, where = path.stat().st_size, f"{filename} in {str(path.parent)!r}"
    if actual != size:
        raise DataError(f"{where} is {'truncated' if actual < size else 'too long'} ({actual:,} bytes, "
                        f"expected {size:,}); {REPLACE}.")
    if not check_integrity(path, md5):
        raise DataError(f"{where} has the wrong MD5 checksum (expected {md5}); {REPLACE}.")
    return path


def download(name, root, urls=None, timeout=30):
    """Download one file into ``root`` from the first of ``urls`` (default: ``mirrors()``) that gives it whole."""
    from torchvision.datasets.utils import check_integrity
    filename, md5, size = FILES[name]
    root, reasons = Path(root), []
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{filename} is missing and cannot be downloaded into {str(root)!r} ({e.strerror}); "
                        f"set {DATA_ENV} to a writable folder or one that holds the four .gz files.") from None
    for base in urls if urls is not None else mirrors():
        url = base.rstrip("/") + "/" + filename
        try:
            with atomic_path(root / filename) as part:
                with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                    shutil.copyfileobj(response, out)
                if part.stat().st_size < size:  # the connection closed early
                    raise DataError(f"the download stopped after {part.stat().st_size:,} of {size:,} bytes")
                if not check_integrity(part, md5):
                    raise DataError(f"the download from {url} has the wrong checksum")
            return root / filename
        except (OSError, http.client.HTTPException, ValueError) as e:  # URLError is an OSError, DataError a ValueError
            reasons.append(f"{url}: {getattr(e, 'reason', None) or e}")
    where = urls[0] if urls else "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"
    others = [f for n, (f, *_) in FILES.items() if n != name and not (root / f).exists()]
    also = f" (the other missing files, {', '.join(others)}, go there too)" if others else ""
    raise DataError(f"{filename} is missing from {str(root)!r} and could not be downloaded "
                    f"({'; '.join(reasons) or 'no address to try'}); fetch it from {where} and put it in "
                    f"{str(root)!r}{also}, or set {DATA_ENV} to a folder that holds the four .gz files.")


def find(name, root=None, allow_download=True, urls=None):
    """Path to one checked file ('train-images', 'train-labels', 'test-images' or 'test-labels')."""
    filename = FILES[checks.choice("Fashion-MNIST file", name, tuple(FILES))][0]
    path = data_dir(root) / filename
    if not path.exists():
        if not allow_download:
            raise DataError(f"{filename} is missing from {str(path.parent)!r}; put the four Fashion-MNIST "
                            f".gz files there or set {DATA_ENV} to a folder that holds them.")
        path = download(name, path.parent, urls=urls)
    elif not os.access(path, os.R_OK):
        raise DataError(f"{filename} in {str(path.parent)!r} cannot be read (permission denied).")
    return check_file(path, name)


def parse_idx(raw, expected_magic=None, source="IDX data"):
    """Parse the bytes of an (uncompressed) unsigned-byte IDX file into a uint8 tensor."""
    magic = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 or magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 4:
        raise DataError(f"{source} has IDX magic number 0x{magic:08x}; an unsigned-byte IDX file "
                        "starts with 0x00000801 (labels) or 0x00000803 (images).")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{source} has IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}.")
    header = 4 + 4 * (magic & 0xFF)  # the magic number, then one 4-byte size per dimension
    shape = tuple(int.from_bytes(raw[i:i + 4], "big") for i in range(4, header, 4))
    if len(raw) - header != math.prod(shape):
        raise DataError(f"{source} holds {max(0, len(raw) - header):,} data bytes, but its header "
                        f"{shape} says {math.prod(shape):,}.")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).view(*shape)


def read_idx_gz(path, expected_magic=None):
    """Read one IDX ``.gz`` file into a uint8 tensor."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path.name} in {str(path.parent)!r} is not a valid gzip file ({e}); "
                        "delete it so that it is downloaded again.") from None
    return parse_idx(raw, expected_magic, source=f"{path.name} in {str(path.parent)!r}")


def load_split(split, root=None, allow_download=True, urls=None):
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, 'train' or 'test'."""
    checks.choice("split", split, tuple(SPLIT_SIZES))
    images, labels = (read_idx_gz(find(f"{split}-{kind}", root, allow_download, urls), MAGIC[kind])
                      for kind in ("images", "labels"))
    return images, labels.long()


def load_fashion_mnist(root=None, allow_download=True, urls=None):
    """All of Fashion-MNIST as uint8 image tensors and int64 labels (a ``FashionMNIST`` tuple)."""
    train, test = (load_split(split, root, allow_download, urls) for split in ("train", "test"))
    return FashionMNIST(*train, *test)


def text_labels(labels):
    """Class names for label indices (d2l's get_fashion_mnist_labels)."""
    return [CLASS_NAMES[int(i)] for i in labels]


def shift(X, dx, dy=0):
    """Images (..., H, W) moved ``dx`` pixels right and ``dy`` down (negative: left, up); what comes in is 0
    (lesson 04)."""
    h, w = X.shape[-2:]
    checks.whole_number("shift right", dx, -(w - 1), w - 1, unit="of pixels")
    checks.whole_number("shift down", dy, -(h - 1), h - 1, unit="of pixels")
    padded = F.pad(X, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    return padded[..., max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w]


def subset_indices(n, size, seed=0):
    """``size`` distinct indices out of ``n``, seeded and sorted: how every lesson, preset and experiment subsets."""
    checks.whole_number("subset size", size, 1)
    if size > n:
        raise checks.refuse(f"subset size {size} is larger than the {n} examples available")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


class Batches:
    """Mini-batches (X, y) from uint8 images kept on ``device``, scaled and resized a batch at a time (lessons 04-06);
    ``subset`` keeps that many (``.indices``: which); each epoch's order is seeded, so resuming repeats it."""

    def __init__(self, images, labels, batch_size, *, shuffle=False, seed=0, resize=None, subset=None, device="cpu",
                 drop_last=False, channels_last=False, flip=False, dtype=torch.float32):
        checks.whole_number("batch_size", batch_size, 1)
        checks.whole_number("resize", resize, 1, none=True)
        checks.whole_number("seed", seed, 0)
        if images.dim() != 3 or images.shape[0] != labels.shape[0]:
            raise checks.refuse(f"images must be (N, H, W) with one label each; got {tuple(images.shape)} "
                                f"and {tuple(labels.shape)}")
        self.indices = torch.arange(len(images)) if subset is None else subset_indices(len(images), subset, seed)
        if subset is not None:
            images, labels = images[self.indices], labels[self.indices]
        if batch_size > len(images):
            raise checks.refuse(f"batch_size {batch_size} is larger than the {len(images)} examples available; "
                                f"use at most {len(images)}")
        self.device = torch.device(device)
        self.images, self.labels, self.num_examples = images.to(self.device), labels.to(self.device), len(labels)
        self.batch_size, self.shuffle, self.seed, self.resize = batch_size, shuffle, seed, resize
        self.drop_last, self.channels_last, self.flip, self.dtype = drop_last, channels_last, flip, dtype
        self.epoch = 0

    def __len__(self):
        return (math.floor if self.drop_last else math.ceil)(self.num_examples / self.batch_size)

    def set_epoch(self, epoch):
        """Make the next iteration use epoch ``epoch``'s order (for resuming)."""
        self.epoch = epoch

    def __iter__(self):
        epoch, n = self.epoch, len(self.labels)
        self.epoch += 1
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)  # each epoch's order, reproducibly
        order = (torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)).to(self.device)
        flips = torch.Generator().manual_seed(self.seed * 7919 + epoch) if self.flip else None
        for index in order[:len(self) * self.batch_size].split(self.batch_size):
            X = self.images[index].unsqueeze(1).to(self.dtype).div_(255)  # uint8 (B, H, W) -> (B, 1, H, W) in [0, 1]
            if self.resize is not None and self.resize != X.shape[-1]:
                X = F.interpolate(X, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
            if self.flip:
                mask = torch.rand(X.shape[0], generator=flips).lt(0.5).to(X.device)
                X = torch.where(mask[:, None, None, None], X.flip(-1), X)
            if self.channels_last:
                X = X.contiguous(memory_format=torch.channels_last)
            yield X, self.labels[index]


def batches(split, batch_size, *, data=None, root=None, **kwargs):
    """``Batches`` over the 'train' or 'test' split; ``data`` reuses a loaded ``FashionMNIST``."""
    checks.choice("split", split, tuple(SPLIT_SIZES))
    if data is None:
        return Batches(*load_split(split, root), batch_size, **kwargs)
    return Batches(getattr(data, f"{split}_images"), getattr(data, f"{split}_labels"), batch_size, **kwargs)


# The book's own input pipeline (lesson 05 and the benchmark of the book's code)
def torchvision_root(root=None, cache=None):
    """A folder in torchvision's FashionMNIST layout holding our files, extracted once into ``cache``."""
    cache = Path(cache) if cache is not None else default_cache_dir().parent / "torchvision"
    raw = cache / "FashionMNIST" / "raw"
    for name, (filename, *_) in FILES.items():
        if not (raw / filename[:-3]).exists():
            with atomic_path(raw / filename[:-3]) as part:
                part.write_bytes(gzip.decompress(find(name, root).read_bytes()))  # checked by find
    return cache


def d2l_style_loaders(batch_size, resize=None, root=None, num_workers=4, cache=None):
    """The book's ``load_data_fashion_mnist``: torchvision dataset + Resize + ToTensor + DataLoader."""
    from torchvision import datasets, transforms
    trans = transforms.Compose(([transforms.Resize(resize)] if resize else []) + [transforms.ToTensor()])
    folder = torchvision_root(root, cache)
    train, test = (datasets.FashionMNIST(root=folder, train=t, transform=trans, download=False) for t in (True, False))
    return (torch.utils.data.DataLoader(train, batch_size, shuffle=True, num_workers=num_workers),
            torch.utils.data.DataLoader(test, batch_size, shuffle=False, num_workers=num_workers))
