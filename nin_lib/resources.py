"""What a training run needs before it starts (lessons 00, 05, 07), one rule for presets, book and panels alike: memory
is ``shapes.cost``'s count for one training step, in GiB; CPU time is the counted training FLOPs at ``CPU_FLOPS``, a
rate a laptop's CPU does not reach on these nets: a lower bound, the same on a busy machine as on a quiet one."""
import torch

from . import checks, runtime, shapes

GiB = 2**30
CPU_FLOPS = 100e9  # floating-point operations a second: more than a laptop's CPU sustains training these nets
CPU_LIMIT_S = 600  # the training panel refuses a CPU run estimated to take longer than this (seconds)


def gib(nbytes):
    """Bytes in GiB, e.g. '0.9 GiB': the one unit of every memory sentence (lesson 07)."""
    return f"{nbytes / GiB:,.1f} GiB"


def duration(seconds):
    """A duration in words: '45 s', '12 minutes', '26 hours' (lesson 05)."""
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} s"


def _cost(key, net, image_shape, batch_size=1, *, optimizer_slots=0, bf16=False):
    """``shapes.cost(...)[key]`` for (c, h, w) ``image_shape`` images; None for a net it cannot follow."""
    try:
        return shapes.cost(net, (1, *image_shape), batch_size, optimizer_slots=optimizer_slots,
                           dtype=torch.bfloat16 if bf16 else torch.float32)[key]
    except (checks.Refusal, RuntimeError):
        return None


def step_bytes(net, image_shape, batch_size, **options):
    """Bytes one training step needs (lesson 07): weights, gradients, optimiser buffers, autograd's; None if unknown."""
    return _cost("train_bytes", net, image_shape, batch_size, **options)


def largest_batch(net, image_shape, nbytes, **options):
    """The largest batch whose training step fits in ``nbytes`` (lesson 07): 0 if not even one image fits, or None."""
    one, two = (step_bytes(net, image_shape, n, **options) for n in (1, 2))  # a fixed part and a part per image
    if one is None:
        return None
    per_image = max(1, two - one)
    return max(0, (nbytes - (one - per_image)) // per_image)


def check_memory(net, image_shape, batch_size, device, *, available=None, **options):
    """Refuse, before anything is allocated, a training step that needs more memory than ``device`` has free
    (``available`` bytes; default: measured now), saying what fits (lesson 07); returns the bytes needed."""
    device = torch.device(device)
    free = runtime.available_memory(device) if available is None else available
    need = step_bytes(net, image_shape, batch_size, **options)
    if free is None or need is None or need <= free:
        return need
    most = largest_batch(net, image_shape, free, **options)
    fits = (f"use a batch size of at most {most:,} at this image size, or a smaller image size" if most >= 1 else
            "not even one image of this size fits, so use a smaller image size")
    h, w = image_shape[1:]
    raise checks.refuse(f"image size {h if h == w else f'{h}×{w}'} with batch_size {batch_size} needs about "
                        f"{gib(need)} for one training step (estimated before allocating anything) but this "
                        f"{device.type} has only {gib(free)} free; {fits}")


def seconds_per_image(net, image_shape):
    """At least how long one training image takes a CPU (lesson 05): its training FLOPs at ``CPU_FLOPS``, or None."""
    flops = _cost("train_flops", net, image_shape)
    return flops / CPU_FLOPS if flops is not None else None


def estimate_seconds(seconds_per_image, train_images, test_images=0, num_epochs=1):
    """A run's seconds (lesson 00): training images at ``seconds_per_image``, test images (forward only) at a third."""
    return num_epochs * (train_images + test_images / 3) * seconds_per_image


def check_cpu_time(net, image_shape, images, *, limit=CPU_LIMIT_S, what="this net"):
    """Refuse a CPU run of ``images`` training images estimated over ``limit`` s (lesson 05's panel); the estimate."""
    t = seconds_per_image(net, image_shape)
    if t is not None and images * t > limit:
        raise checks.refuse(f"{what} needs about {t * CPU_FLOPS / 1e9:,.2f} billion floating-point operations per "
                            f"training image, so {images:,} training images would take at least "
                            f"{duration(images * t)} on a CPU even at {CPU_FLOPS / 1e9:.0f} GFLOP/s (more than "
                            f"{duration(limit)}); choose fewer images or epochs, the quick preset, or a GPU")
    return images * t if t is not None else None

