"""Where a command line's output goes, and what happens when it cannot go there.

A reader that closes the pipe (`python -m lib.sample ... | head -c 10`) ends the command
quietly, as it ends `cat`; a full disk or device (`> /dev/full`) ends it in one line; Ctrl-C
anywhere ends it in one line with the shell's exit status 130. Never a traceback. This module
imports nothing heavy, so that lib/train.py and lib/sample.py can use it around their imports.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys

EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a program ended by SIGPIPE


class OutputFailed(Exception):
    """Writing the command's output failed (the OSError is `.err`)."""

    def __init__(self, err: OSError):
        super().__init__(str(err))
        self.err = err


class GuardedOutput:
    """A stream whose write and flush failures raise OutputFailed, which the command lines
    (lib.cli's user errors include OSError) do not mistake for a user's bad file."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except OSError as err:
            raise OutputFailed(err) from None

    def flush(self):
        try:
            self.stream.flush()
        except OSError as err:
            raise OutputFailed(err) from None

    def __getattr__(self, name):
        return getattr(self.stream, name)


class Unfailing:
    """A stream whose writes and flushes never raise: after the terminal was closed (SIGHUP)
    they fail with EIO or a broken pipe, and a message nobody can read is dropped instead."""

    def __init__(self, stream):
        self.stream = stream.stream if isinstance(stream, Unfailing) else stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except (OSError, ValueError, OutputFailed):
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except (OSError, ValueError, OutputFailed):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _drop_stdout() -> None:
    """Send what is left of stdout to the null device, so that Python's last flush at exit
    does not fail again (and print 'Exception ignored ... BrokenPipeError')."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.__stdout__.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def starting():
    """Around a command line's imports (torch takes a second or more): Ctrl-C there ends the
    process at once with one line and status 130. A KeyboardInterrupt raised inside an import
    can be swallowed by the imported code (one of torch's imports did, and the command then ran
    as if never interrupted), so the signal's handler ends the process itself."""
    def stop(signum, frame):
        os.write(2, b"Interrupted while starting; nothing was done.\n")
        os._exit(130)  # nothing was done yet: nothing to clean up

    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler:  # not where SIGINT is ignored (a background job)
        signal.signal(signal.SIGINT, stop)
    try:
        yield
    except KeyboardInterrupt:  # Ctrl-C just before the handler was set
        stop(signal.SIGINT, None)
    finally:
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous)


def run_command(main, prog: str, argv: list[str] | None = None) -> None:
    """Run a command line's `main(argv)` with its output guarded (see the module's docstring)."""
    sys.stdout = GuardedOutput(sys.stdout)
    try:
        try:
            main(argv)
        finally:  # the output's last bytes, also after sys.exit
            sys.stdout.flush()
    except OutputFailed as failed:
        _drop_stdout()
        if isinstance(failed.err, BrokenPipeError) or failed.err.errno == errno.EPIPE:
            sys.exit(EXIT_BROKEN_PIPE)  # the reader had read enough: nothing to report
        cause = failed.err.strerror or str(failed.err)
        print(f"{prog}: error: cannot write the output to stdout ({cause})", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\nInterrupted; nothing more was done.", file=sys.stderr)
        sys.exit(130)
