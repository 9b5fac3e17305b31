"""Fashion-MNIST: find, download, verify and load it; serve batches on the training device (all lessons).

The four standard IDX ``.gz`` files are read as they are (no extraction), so a read-only
folder holding them works. ``NIN_DATA_DIR`` names that folder; without it a per-user
cache folder is used, and missing files are downloaded there when there is a network.
"""
import gzip
import hashlib
import http.client
import os
import shutil
import struct
import urllib.error
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
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot")

# name -> (file, published MD5, size in bytes, IDX magic number, item shape)
FILES = {
    "train-images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880, 0x803, (60000, 28, 28)),
    "train-labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515, 0x801, (60000,)),
    "test-images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102, 0x803, (10000, 28, 28)),
    "test-labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148, 0x801, (10000,)),
}

FashionMNIST = namedtuple("FashionMNIST", "train_images train_labels test_images test_labels")


class DataError(ValueError):
    """A data file or folder is missing, unreadable or corrupt; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------
# Where the files are

def default_cache_dir():
    """The per-user folder used when ``NIN_DATA_DIR`` is not set."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nin-notebooks" / "fashion-mnist"


def data_dir(path=None):
    """The data folder: ``path`` if given, else ``NIN_DATA_DIR``, else the per-user cache folder.

    A folder that exists must be a readable folder; one that does not exist yet is allowed
    (the files can be downloaded into it).
    """
    if path is None:
        env = os.environ.get(DATA_ENV, "").strip()
        path = Path(env).expanduser() if env else default_cache_dir()
    path = Path(path)
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


def md5sum(path, chunk=1 << 20):
    """The MD5 hex digest of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path, name):
    """Check a file's size and published MD5; raise DataError with the fix if either is wrong."""
    filename, md5, size, _, _ = FILES[name]
    actual = path.stat().st_size
    if actual != size:
        what = "truncated" if actual < size else "too long"
        raise DataError(f"{filename} in {str(path.parent)!r} is {what} ({actual:,} bytes, expected {size:,}); "
                        "delete it so that it is downloaded again, or replace it with the original file.")
    if md5sum(path) != md5:
        raise DataError(f"{filename} in {str(path.parent)!r} has the wrong MD5 checksum (expected {md5}); "
                        "delete it so that it is downloaded again, or replace it with the original file.")


def download(name, root, urls=None, timeout=30):
    """Download one file into ``root`` atomically (``runtime.atomic_path``): a partial download never takes its name.

    ``urls`` are base addresses to try in order (default: torchvision's mirrors).
    """
    filename, md5, size, _, _ = FILES[name]
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{filename} is missing and cannot be downloaded into {str(root)!r} ({e.strerror}); "
                        f"set {DATA_ENV} to a writable folder or one that holds the four .gz files.") from None
    target = root / filename
    reasons = []
    for base in urls if urls is not None else mirrors():
        url = base.rstrip("/") + "/" + filename
        try:
            with atomic_path(target) as part:  # a partial download never takes the file's name
                with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
                    shutil.copyfileobj(response, out)
                got = part.stat().st_size
                if got < size:  # the connection closed early
                    raise DataError(f"the download stopped after {got:,} of {size:,} bytes")
                if md5sum(part) != md5:
                    raise DataError(f"the download from {url} has the wrong checksum")
            return target
        except (OSError, urllib.error.URLError, http.client.HTTPException, DataError, ValueError) as e:
            reasons.append(f"{url}: {getattr(e, 'reason', None) or e}")
    where = urls[0] if urls else "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"
    others = [f for n, (f, *_r) in FILES.items() if n != name and not (root / f).exists()]
    also = f" (the other missing files, {', '.join(others)}, go there too)" if others else ""
    raise DataError(f"{filename} is missing from {str(root)!r} and could not be downloaded "
                    f"({'; '.join(reasons) or 'no address to try'}); fetch it from {where} and put it in "
                    f"{str(root)!r}{also}, or set {DATA_ENV} to a folder that holds the four .gz files.")


def find(name, root=None, allow_download=True, urls=None):
    """Path to one verified file ('train-images', 'train-labels', 'test-images' or 'test-labels')."""
    if name not in FILES:
        raise DataError(f"unknown Fashion-MNIST file {name!r}; choose one of {', '.join(FILES)}.")
    root = data_dir(root)
    path = root / FILES[name][0]
    if not path.exists():
        if not allow_download:
            raise DataError(f"{FILES[name][0]} is missing from {str(root)!r}; put the four Fashion-MNIST "
                            f".gz files there or set {DATA_ENV} to a folder that holds them.")
        path = download(name, root, urls=urls)
    elif not os.access(path, os.R_OK):
        raise DataError(f"{FILES[name][0]} in {str(root)!r} cannot be read (permission denied).")
    verify(path, name)
    return path


# ---------------------------------------------------------------------------------------------
# Reading IDX files

def parse_idx(raw, expected_magic=None, source="IDX data"):
    """Parse the bytes of an (uncompressed) unsigned-byte IDX file into a uint8 tensor."""
    if len(raw) < 4:
        raise DataError(f"{source} is too short to be an IDX file ({len(raw)} bytes).")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic >> 8 != 0x08 or not 1 <= magic & 0xFF <= 4:
        raise DataError(f"{source} has IDX magic number 0x{magic:08x}; an unsigned-byte IDX file "
                        "starts with 0x00000801 (labels) or 0x00000803 (images).")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{source} has IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x}.")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{source} is truncated inside its IDX header.")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for n in shape:
        count *= n
    if len(raw) - header != count:
        raise DataError(f"{source} holds {len(raw) - header:,} data bytes, but its header "
                        f"{tuple(shape)} says {count:,}.")
    data = torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8)
    return data.view(*shape)


def _gunzip(path):
    try:
        with open(path, "rb") as f:
            return gzip.decompress(f.read())
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path.name} in {str(path.parent)!r} is not a valid gzip file ({e}); "
                        "delete it so that it is downloaded again.") from None


def read_idx_gz(path, expected_magic=None):
    """Read one IDX ``.gz`` file into a uint8 tensor."""
    path = Path(path)
    return parse_idx(_gunzip(path), expected_magic, source=f"{path.name} in {str(path.parent)!r}")


def load_split(split, root=None, allow_download=True, urls=None):
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, 'train' or 'test'."""
    checks.choice("split", split, ("train", "test"))
    out = []
    for kind in ("images", "labels"):
        name = f"{split}-{kind}"
        path = find(name, root, allow_download=allow_download, urls=urls)
        tensor = read_idx_gz(path, FILES[name][3])
        if tuple(tensor.shape) != FILES[name][4]:
            raise DataError(f"{path.name} has shape {tuple(tensor.shape)}, expected {FILES[name][4]}.")
        out.append(tensor)
    images, labels = out
    return images, labels.long()


def load_fashion_mnist(root=None, allow_download=True, urls=None):
    """All of Fashion-MNIST as uint8 image tensors and int64 labels (a ``FashionMNIST`` tuple)."""
    train = load_split("train", root, allow_download, urls)
    test = load_split("test", root, allow_download, urls)
    return FashionMNIST(train[0], train[1], test[0], test[1])


def text_labels(labels):
    """Class names for label indices (d2l's get_fashion_mnist_labels)."""
    return [CLASS_NAMES[int(i)] for i in labels]


# ---------------------------------------------------------------------------------------------
# Batches on the training device

def subset_indices(n, size, seed=0):
    """A seeded random choice of ``size`` distinct indices out of ``n``, sorted."""
    checks.whole_number("subset size", size, 1)
    if size > n:
        raise checks.refuse(f"subset size {size} is larger than the {n} examples available")
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=generator)[:size].sort().values


class Batches:
    """Mini-batches of (X, y) served from tensors kept on one device (lessons 04-06).

    Images are stored once as uint8 on ``device``; each batch is gathered, scaled to [0, 1]
    and, if ``resize`` is given, resized as a whole batch on that device. Shuffling uses a
    ``torch.Generator`` seeded with ``seed`` and the epoch number, so every epoch's order is
    reproducible and a resumed run sees the same batches (``set_epoch``).
    """

    def __init__(self, images, labels, batch_size, *, shuffle=False, seed=0, resize=None,
                 subset=None, device="cpu", drop_last=False, channels_last=False,
                 flip=False, dtype=torch.float32):
        checks.whole_number("batch_size", batch_size, 1)
        checks.whole_number("resize", resize, 1, none=True)
        if images.dim() != 3 or images.shape[0] != labels.shape[0]:
            raise checks.refuse(f"images must be (N, H, W) with one label each; got {tuple(images.shape)} "
                                f"and {tuple(labels.shape)}")
        if subset is not None:
            index = subset_indices(len(images), subset, seed)
            images, labels = images[index], labels[index]
        if batch_size > len(images):
            raise checks.refuse(f"batch_size {batch_size} is larger than the {len(images)} examples available; "
                                f"use at most {len(images)}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.resize = resize
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.flip = flip
        self.dtype = dtype
        self.epoch = 0

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self):
        return len(self.labels)

    def set_epoch(self, epoch):
        """Make the next iteration use epoch ``epoch``'s order (for resuming)."""
        self.epoch = epoch

    def order(self, epoch):
        """The example order of one epoch (a CPU tensor of indices)."""
        n = len(self.labels)
        if not self.shuffle:
            return torch.arange(n)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=generator)

    def transform(self, images, generator=None):
        """uint8 (B, H, W) on the device -> float (B, 1, H', W') in [0, 1], resized and flipped."""
        X = images.unsqueeze(1).to(self.dtype).div_(255)
        if self.resize is not None and self.resize != X.shape[-1]:
            X = F.interpolate(X, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        if self.flip:
            mask = torch.rand(X.shape[0], generator=generator).lt(0.5).to(X.device)
            X = torch.where(mask[:, None, None, None], X.flip(-1), X)
        if self.channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        return X

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        order = self.order(epoch).to(self.device)
        flips = torch.Generator().manual_seed(self.seed * 7919 + epoch) if self.flip else None
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(order)), self.batch_size):
            index = order[start:start + self.batch_size]
            yield self.transform(self.images[index], flips), self.labels[index]


def batches(split, batch_size, *, data=None, root=None, **kwargs):
    """``Batches`` over the 'train' or 'test' split; ``data`` reuses a loaded ``FashionMNIST``."""
    if data is None:
        images, labels = load_split(split, root)
    elif split == "train":
        images, labels = data.train_images, data.train_labels
    elif checks.choice("split", split, ("train", "test")) == "test":
        images, labels = data.test_images, data.test_labels
    return Batches(images, labels, batch_size, **kwargs)


# ---------------------------------------------------------------------------------------------
# The book's own input pipeline, kept for the benchmark

def torchvision_root(root=None, cache=None):
    """A folder in torchvision's FashionMNIST layout (``FashionMNIST/raw``), filled from our files.

    torchvision reads extracted IDX files; they are written once into ``cache``
    (default: the per-user cache), so a read-only ``NIN_DATA_DIR`` still works.
    """
    cache = Path(cache) if cache is not None else default_cache_dir().parent / "torchvision"
    raw = cache / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, (filename, *_rest) in FILES.items():
        target = raw / filename[:-3]
        if not target.exists():
            with atomic_path(target) as part:
                part.write_bytes(_gunzip(find(name, root)))
    return cache


def d2l_style_loaders(batch_size, resize=None, root=None, num_workers=4, cache=None):
    """The book's ``load_data_fashion_mnist``: torchvision dataset + Resize + ToTensor + DataLoader."""
    from torch.utils import data as tud
    from torchvision import datasets, transforms

    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    folder = torchvision_root(root, cache)
    train = datasets.FashionMNIST(root=folder, train=True, transform=trans, download=False)
    test = datasets.FashionMNIST(root=folder, train=False, transform=trans, download=False)
    return (tud.DataLoader(train, batch_size, shuffle=True, num_workers=num_workers),
            tud.DataLoader(test, batch_size, shuffle=False, num_workers=num_workers))
