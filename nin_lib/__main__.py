"""Command line: ``python -m nin_lib trace | train | bench`` (see ``--help``).

Bad arguments end with exit status 2 and one sentence on standard error, never a traceback.
"""
import argparse
import sys


class UsageError(Exception):
    """A bad command-line value; printed as one sentence with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}.")


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return value


def cmd_trace(args):
    from . import models, shapes
    net = models.get_model(args.model)
    size = args.input_size if args.input_size is not None else models.model_input_size(args.model)
    if args.table:
        print(shapes.trace(net, size, depth=args.depth))
    else:
        shapes.print_seed_table(net, size)
    return 0


def build_parser():
    from . import models
    parser = _Parser(prog="python -m nin_lib", description="NiN lessons: trace, train and benchmark from the shell.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("trace", help="print a net's layer-by-layer output shapes (the seed's table)")
    p.add_argument("--model", default="d2l", choices=list(models.MODELS), help="which net (default: d2l, the seed's NiN)")
    p.add_argument("--input-size", type=_int, default=None, help="input height and width in pixels (default: the model's own)")
    p.add_argument("--table", action="store_true", help="print the richer table (shape, parameters, MACs, receptive field)")
    p.add_argument("--depth", default="top", choices=["top", "leaf"], help="table rows per top-level layer or per leaf layer")
    p.set_defaults(func=cmd_trace)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


# Other modules add their subcommands here (train, bench), each a function taking the subparsers.
_EXTRA_COMMANDS = []


def main(argv=None):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # the library's one-sentence errors about bad values
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
