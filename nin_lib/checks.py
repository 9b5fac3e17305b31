"""The one sentence every bad argument gets (all of nin_lib): it names the value and says what is allowed.

>>> whole_number("batch_size", 0, 1, 60000)
Traceback (most recent call last):
ValueError: batch_size 0 is not allowed; use a whole number from 1 to 60000.

Each check returns the value when it is allowed, so ``n = whole_number("n", n, 1)`` reads as an assignment.
"""
import math


def refuse(sentence):
    """The ValueError for one sentence (a full stop is added if it has none); ``raise checks.refuse(...)``."""
    sentence = sentence.strip()
    return ValueError(sentence if sentence.endswith(".") else sentence + ".")


def _named(name, value):
    return f"{name} {value!r}" if name else f"{value!r}"


def is_whole(value):
    """A whole number that is not a bool (True is an int to Python, never a batch size to a learner)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value):
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def whole_number(name, value, low=None, high=None, *, unit="", none=False):
    """``value`` if it is a whole number in [low, high] (either end may be open-ended: None), else the sentence.

    ``unit`` words the allowed values ("of pixels"); ``none=True`` also allows None.
    """
    if value is None and none:
        return value
    if is_whole(value) and (low is None or value >= low) and (high is None or value <= high):
        return value
    what = f"a whole number{' ' + unit if unit else ''}"
    if low is not None and high is not None:
        allowed = f"{what} from {low} to {high}"
    elif low is not None:
        allowed = f"{what} >= {low}"
    elif high is not None:
        allowed = f"{what} <= {high}"
    else:
        allowed = what
    if none:
        allowed += " or None"
    raise refuse(f"{_named(name, value)} is not allowed; use {allowed}")


def number(name, value, low=None, high=None, *, low_open=False, high_open=False, example=None):
    """``value`` if it is a finite number in the interval from ``low`` to ``high`` (open ends as asked), else the
    sentence, e.g. "momentum 1.0 is not allowed; use a number in [0, 1)." ``example`` is added as "such as …"."""
    ok = is_number(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return value
    if low is not None and high is not None:
        allowed = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        allowed = f"a finite number {'>' if low_open else '>='} {low}"
    elif high is not None:
        allowed = f"a finite number {'<' if high_open else '<='} {high}"
    else:
        allowed = "a finite number"
    if example is not None:
        allowed += f", such as {example}"
    raise refuse(f"{_named(name, value)} is not allowed; use {allowed}")


def learning_rate(value, name="learning rate"):
    """``value`` if it is a finite number > 0 (a learning rate), else the sentence."""
    return number(name, value, 0, low_open=True, example=0.1)


def choice(name, value, allowed):
    """``value`` if it is one of ``allowed``, else "… is not known; choose one of …"."""
    if any(value == option and type(value) is type(option) for option in allowed):
        return value
    raise refuse(f"{_named(name, value)} is not known; choose one of {', '.join(map(str, allowed))}")


def flag(name, value):
    """``value`` if it is True or False, else the sentence."""
    if isinstance(value, bool):
        return value
    raise refuse(f"{_named(name, value)} is not allowed; use True or False")


def auto_flag(name, value):
    """``value`` if it is 'auto', True or False (a device policy such as bf16 autocast), else the sentence."""
    if value == "auto" or isinstance(value, bool):
        return value
    raise refuse(f"{_named(name, value)} is not allowed; use 'auto', True or False")


# ---------------------------------------------------------------------------------------------
# The same sentences for command-line text (argparse ``type=`` functions)

def whole_number_text(low=None):
    """An argparse type: text that is a whole number, at least ``low`` when given."""
    import argparse

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        try:
            return whole_number(None, value, low)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error).rstrip(".")) from None
    return parse


def number_text(text):
    """An argparse type: text that is a number (its range is the library's to check)."""
    import argparse
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
