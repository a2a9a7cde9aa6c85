"""The `mnist-edge` command: one console script, one subcommand per stage.

    mnist-edge train --quick && mnist-edge export --int8 && mnist-edge bench

Each subcommand's module is imported only when it runs, so the device commands (camera, predict,
doctor) never load TensorFlow.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import signal
import sys
from importlib import import_module

from edge import signals

log = logging.getLogger(__name__)

COMMANDS = {
    "train": ("train.train", "train a model on MNIST (needs the 'train' extra)"),
    "locator": ("train.locator", "train the digit locator on desk scenes, export it int8"),
    "rows": ("train.rows", "train the row reader on the rows the locator finds, export it int8"),
    "export": ("export.cli", "export fp32/int8 TFLite and ONNX, each validated"),
    "bench": ("benchmarks.bench", "accuracy against latency across runtimes"),
    "camera": ("edge.camera", "read digits from a camera, video or folder of images"),
    "predict": ("edge.predict", "read digits in image files"),
    "doctor": ("edge.doctor", "what this device has and what is missing"),
}

# what a command cannot start without, looked for (not imported) before it starts: on a device install
# it says what to install first, not after drawing data or writing an empty log into --out
NEEDS = {"train": ("tensorflow", "keras"), "locator": ("tensorflow", "keras"),
         "rows": ("tensorflow", "keras"),
         "export": ("tensorflow", "keras")}  # (tf2onnx and onnx only for ONNX files: asked for then)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # what MNIST_EDGE_LOG may say
STDOUT_ONLY = ("edge.predict", "edge.doctor")  # commands whose only output is stdout: refused when it
#   is closed from the start (camera may publish to MQTT or serve its page; the others write files)

# a module a command needs -> the pip extra that installs it (the interpreters': edge.contract.RUNTIMES)
EXTRAS = {"cv2": "camera", "tensorflow": "train", "keras": "train", "tf2onnx": "train", "onnx": "train",
          "matplotlib": "train"}


def usage() -> str:
    lines = ["usage: mnist-edge COMMAND [options]   (mnist-edge COMMAND --help for its options)", "",
             "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "  -V, --version  the version of mnist-edge"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        return _say("mnist-edge", usage()) or (0 if argv else 2)
    if argv[0] in ("-V", "--version"):
        from edge import __version__
        return _say("mnist-edge", f"mnist-edge {__version__}")
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"mnist-edge: error: unknown command {cmd!r} (expected one of {', '.join(COMMANDS)}; "
              "mnist-edge --help says what each does)", file=sys.stderr)
        return 2
    return run(f"mnist-edge {cmd}", COMMANDS[cmd][0], rest, NEEDS.get(cmd, ()))


def script(module: str) -> int:
    """A `python -m` entry point (the benchmarks' scripts) run as an `mnist-edge` command is: one-line
    errors, a quiet end when stdout's reader goes away, Ctrl-C and SIGTERM as stops.

        if __name__ == "__main__":
            sys.exit(script("benchmarks.frames"))
    """
    return run(f"python -m {module}", module, sys.argv[1:])


def run(prog: str, module: str, rest: list[str], needs: tuple[str, ...] = ()) -> int:
    """`module`'s get_args_parser() and main(args) on the arguments `rest`, as the command `prog`."""
    level = os.environ.get("MNIST_EDGE_LOG", "INFO").strip().upper() or "INFO"
    if level not in LOG_LEVELS + ("WARN", "FATAL", "NOTSET"):  # what logging takes, its aliases too
        print(f"{prog}: error: MNIST_EDGE_LOG={os.environ['MNIST_EDGE_LOG']!r}: expected one of "
              f"{', '.join(LOG_LEVELS)}", file=sys.stderr)
        return 2
    if sys.stdout is None and module in STDOUT_ONLY:  # started with stdout closed (`>&-`): what it
        return _say(prog, "")  # would print is all it does (camera may publish, export writes files)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner quiet
    for noisy in ("tensorflow", "tf2onnx", "absl", "onnxruntime", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with signals.handled():  # Ctrl-C and SIGTERM unwind, and are recorded (edge.signals)
        return _run(prog, module, rest, needs)


def _run(prog: str, module_name: str, rest: list[str], needs: tuple[str, ...]) -> int:
    """The command, its outcome as an exit code: a user's mistake is one line and 2."""
    try:
        module = import_module(module_name)
        try:
            args = _with_dash_hint(_one_line_errors(module.get_args_parser()), rest).parse_args(rest)
        except SystemExit as e:
            if e.code == 0:  # --help: its text reached stdout, or one line says why not
                _flush_stdout()
            raise
        for name in needs:
            if importlib.util.find_spec(name) is None:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        code = int(module.main(args) or 0)
        signals.raise_if_received()  # a signal some library swallowed still ends the command as one
        _flush_stdout(module_name in STDOUT_ONLY)
        return code
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        return _stopped(prog, isinstance(e, signals.Terminated))
    except Exception as e:
        if signals.received():  # the signal's KeyboardInterrupt came out as another error (TensorFlow's
            #                     tracing gives a TypeError) or was wrapped in a UserError: a stop
            log.debug("stopped while raising %r", e, exc_info=True)
            return _stopped(prog, signals.received() == signal.SIGTERM)
        return _failed(prog, e)


def _flush_stdout(needed: bool = True) -> None:
    """A closed or full stdout shows here (BrokenPipeError, OutputError), not as noise at exit.
    `needed`: a stdout closed from the start is an error (what was printed is all there is)."""
    from edge.output import OutputError

    if sys.stdout is None:  # closed when Python started: what was printed went nowhere
        if needed:
            raise OutputError("stdout is closed; nothing could be written (redirect it to a file or "
                              "/dev/null)")
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise OutputError(f"cannot write to stdout ({e.strerror or e})") from None


def _say(prog: str, text: str) -> int:
    """Print the top-level usage or version: 0, or 1 and one line when stdout cannot take it."""
    try:
        print(text)
        _flush_stdout()
        return 0
    except Exception as e:  # a closed pipe or an unwritable stdout; anything else is raised again
        return _failed(prog, e)


def _one_line_errors(parser):
    """The parser, whose mistakes (a bad flag or value) are one line and exit 2, as every other user
    error is, rather than argparse's usage block before that line."""
    def error(message: str):
        more = "" if message.endswith(")") else " (--help lists the options)"  # unless a hint is there
        print(f"{parser.prog}: error: {message}{more}", file=sys.stderr)
        sys.exit(2)

    def print_message(message: str, file=None):  # argparse's own drops write errors: --help to a
        if message:                                  # full disk would say nothing and exit 0
            (file or sys.stderr).write(message)

    parser.error = error
    parser._print_message = print_message
    return parser


def _with_dash_hint(parser, rest: list[str]):
    """The parser, whose error line also says how to pass a file whose name starts with '-' (which
    argparse takes for an unknown option) when such a file is on the command line: as ./-name, or
    after -- where the command takes file names (predict), not as a flag's value (camera --source)."""
    before = rest[:rest.index("--")] if "--" in rest else rest  # after --, nothing is an option
    dashed = [i for i, a in enumerate(before) if a.startswith("-") and len(a) > 1 and os.path.isfile(a)]
    if dashed:
        error = parser.error
        valued = {s for a in parser._actions if a.nargs != 0 for s in a.option_strings}  # flags with a value
        files = any(not a.option_strings for a in parser._actions)  # positional arguments: file names
        value = dashed[0] > 0 and before[dashed[0] - 1] in valued  # the file is a flag's value (--model)
        name = before[dashed[0]]
        hint = f"write ./{name}" + (", or put -- before the file names" if files and not value else "")

        def error_with_hint(message: str):
            error(f"{message} ({name} is a file: {hint})")

        parser.error = error_with_hint
    return parser


def _failed(prog: str, e: Exception) -> int:
    """A failure users cause (a mistake, a missing extra, stdout gone, a full disk): one line and its
    exit code. Anything else is raised again: a bug shows its traceback."""
    from edge.errors import UserError
    from edge.output import OutputError, silence_stdout

    if isinstance(e, BrokenPipeError):  # the reader went away (`| head -1`): a normal end
        silence_stdout()
        return 0
    if isinstance(e, OutputError):
        silence_stdout()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
        silence_stdout()  # a full disk or a failing device, where it was writing
        where = f"to {e.filename}" if e.filename else "to stdout"  # print() errors carry no file name
        print(f"{prog}: error: cannot write {where} ({e.strerror})", file=sys.stderr)
        return 1
    if isinstance(e, ModuleNotFoundError):  # an extra this command needs is not installed
        from edge.contract import RUNTIMES

        extras = EXTRAS | {rt.module.split(".")[0]: rt.extra for rt in RUNTIMES.values()}
        top = (e.name or "").split(".")[0]
        if top in extras:
            print(f"{prog}: error: needs the Python module '{top}', which is not installed "
                  f"(pip install 'mnist-edge[{extras[top]}]')", file=sys.stderr)
            return 2
    if isinstance(e, UserError):
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    raise e


def _stopped(prog: str, terminated: bool) -> int:
    print(f"{prog}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    return 143 if terminated else 130


if __name__ == "__main__":
    sys.exit(main())
