"""The one sentence every bad value gets (all lessons), e.g. "batch_size 0 is not allowed; use a whole number >= 1."

Only a ``Refusal`` is the user's bad value (one sentence in the command line and the panels); any other exception is
a bug. Each check returns the value when it is allowed, so ``n = whole_number("n", n, 1)`` reads as an assignment.
"""
import argparse
import math


class Refusal(ValueError):
    """A user's value that is not allowed, in one sentence naming it and what is allowed (a ValueError)."""


def refuse(sentence):
    """The ``Refusal`` for one sentence (a full stop is added if it has none); ``raise checks.refuse(...)``."""
    return Refusal(sentence.strip().removesuffix(".") + ".")


def _named(name, value):
    return f"{name} {value!r}" if name else f"{value!r}"


def is_whole(value):
    """A whole number that is not a bool (True is an int to Python, never a batch size to a learner)."""
    return isinstance(value, int) and not isinstance(value, bool)


def whole_number(name, value, low=None, high=None, *, unit="", none=False):
    """``value`` if it is a whole number in [low, high] (None: open-ended; none=True: None too), else the sentence."""
    if value is None and none:
        return value
    if is_whole(value) and (low is None or value >= low) and (high is None or value <= high):
        return value
    allowed = f"a whole number{' ' + unit if unit else ''}"  # unit: "of pixels"
    if low is not None:
        allowed += f" from {low} to {high}" if high is not None else f" >= {low}"
    elif high is not None:
        allowed += f" <= {high}"
    allowed += " or None" if none else ""
    raise refuse(f"{_named(name, value)} is not allowed; use {allowed}")


def number(name, value, low=None, high=None, *, low_open=False, high_open=False, example=None):
    """``value`` if it is a finite number from ``low`` to ``high`` (open ends as asked), else the sentence."""
    if (is_whole(value) or isinstance(value, float)) and math.isfinite(value) and (
            low is None or (value > low if low_open else value >= low)) and (
            high is None or (value < high if high_open else value <= high)):
        return value
    allowed = "a finite number"
    if low is not None and high is not None:
        allowed = f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        allowed += f" {'>' if low_open else '>='} {low}"
    elif high is not None:
        allowed += f" {'<' if high_open else '<='} {high}"
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


# The same sentences for command-line text (argparse ``type=`` functions)
def whole_number_text(low=None):
    """An argparse type: text that is a whole number, at least ``low`` when given."""
    def parse(text):
        try:
            return whole_number(None, int(text), low)
        except Refusal as error:
            raise argparse.ArgumentTypeError(str(error).rstrip(".")) from None
        except ValueError:  # int() cannot read the text
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return parse


def number_text(text):
    """An argparse type: text that is a number (its range is the library's to check)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
