"""The `mnist-edge` command: one console script, one subcommand per stage.

    mnist-edge train --quick && mnist-edge export --int8 && mnist-edge bench

Each subcommand's module is imported only when it runs, so the device commands (camera, predict,
doctor) never load TensorFlow.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
from importlib import import_module

COMMANDS = {
    "train": ("train.train", "train a model on MNIST (needs the 'train' extra)"),
    "locator": ("train.locator", "train the digit locator on desk scenes, export it int8"),
    "export": ("export.cli", "export fp32/int8 TFLite and ONNX, each validated"),
    "bench": ("benchmarks.bench", "accuracy against latency across runtimes"),
    "camera": ("edge.camera", "read digits from a camera, video or folder of images"),
    "predict": ("edge.predict", "read digits in image files"),
    "doctor": ("edge.doctor", "what this device has and what is missing"),
}

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
    from edge.errors import UserError

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from edge import __version__
        print(f"mnist-edge {__version__}")
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        print(f"mnist-edge: error: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=os.environ.get("MNIST_EDGE_LOG", "INFO").upper(),
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner quiet
    for noisy in ("tensorflow", "tf2onnx", "absl", "onnxruntime", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from edge.output import OutputError, silence_stdout

    # SIGTERM unwinds like Ctrl-C, so atomic writes remove their temporary files (camera installs
    # its own handlers, which stop its loop instead); both are recorded (`raise_if_interrupted`)
    _caught.clear()
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _terminate),
                    signal.SIGINT: signal.signal(signal.SIGINT, _interrupt)}
    try:
        module = import_module(COMMANDS[cmd][0])
        args = module.get_args_parser().parse_args(rest)
        code = int(module.main(args) or 0)
        raise_if_interrupted()  # a signal some library swallowed still ends the command as one
        try:  # a closed or full stdout shows here, not as noise at interpreter exit
            sys.stdout.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise OutputError(f"cannot write to stdout ({e.strerror or e})") from None
        return code
    except BrokenPipeError:  # the reader went away (`| head -1`): a normal end
        silence_stdout()
        return 0
    except OutputError as e:
        silence_stdout()
        print(f"mnist-edge {cmd}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk or a failing device, where it was writing: one line, exit 1
        if e.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
            raise
        silence_stdout()
        where = f"to {e.filename}" if e.filename else "to stdout"  # print() errors carry no file name
        print(f"mnist-edge {cmd}: error: cannot write {where} ({e.strerror})", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:  # an extra this command needs is not installed
        from edge.contract import RUNTIMES

        extras = EXTRAS | {rt.module.split(".")[0]: rt.extra for rt in RUNTIMES.values()}
        top = (e.name or "").split(".")[0]
        if top not in extras:
            raise
        print(f"mnist-edge {cmd}: error: needs the Python module '{top}', which is not installed "
              f"(pip install 'mnist-edge[{extras[top]}]')", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"mnist-edge {cmd}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (Terminated)
        return _stopped(cmd, isinstance(e, Terminated))
    except Exception:
        if not _caught:
            raise
        # the signal's KeyboardInterrupt turned into another error on its way out (TensorFlow's
        # tracing gives a TypeError, zipfile a ValueError when it lands inside them): still a stop
        return _stopped(cmd, _caught[-1] == signal.SIGTERM)
    finally:
        if main_thread:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _stopped(cmd: str, terminated: bool) -> int:
    print(f"mnist-edge {cmd}: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
    return 143 if terminated else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so `finally` blocks and atomic writes clean up."""


_caught: list[int] = []  # the signals (SIGINT, SIGTERM) this command has received


def _interrupt(signum, _frame):
    _caught.append(signum)
    raise KeyboardInterrupt()


def _terminate(signum, _frame):
    _caught.append(signum)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once is enough
    raise Terminated()


def raise_if_interrupted() -> None:
    """Raise again a Ctrl-C or SIGTERM this command received, if something swallowed it: the TFLite
    converter catches the KeyboardInterrupt raised in its calibration callback and converts on (an
    export told to stop went on and wrote its manifest, exit 0). Called after each conversion."""
    if _caught:
        raise Terminated() if _caught[-1] == signal.SIGTERM else KeyboardInterrupt()


if __name__ == "__main__":  # python -m edge.cli: run the module itself, whose signal record
    from edge import cli  # (`_caught`) is the one export checks, not this __main__ copy's

    sys.exit(cli.main())
