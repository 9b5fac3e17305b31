"""Command-line plumbing shared by ``python -m nin_lib`` and the scripts under benchmarks/.

A bad argument becomes one sentence with exit status 2, never argparse's usage dump or a traceback.
"""
import argparse


class UsageError(Exception):
    """A bad command-line value; printed as one sentence with exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise UsageError instead of printing usage and exiting."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}.")


def whole_number(low=None):
    """An argparse type: a whole number, at least ``low`` when given."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{value} is not allowed; use a whole number >= {low}")
        return value
    return parse


def number(text):
    """An argparse type: any number."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
