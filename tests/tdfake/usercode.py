"""Running user code the way TD does: timed, print() to the textport, errors logged not raised."""

import io
import os
import sys
import threading
import time
import traceback

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class TextportStream(io.TextIOBase):
    """Stands in for sys.stdout/stderr while user code runs on the main thread.

    Writes from other threads pass straight to the real stream: only main-thread
    user code is "inside TD".
    """

    def __init__(self, runner, original):
        self._runner = runner
        self._original = original

    def writable(self):
        return True

    def write(self, text):
        if threading.get_ident() != self._runner.main_ident:
            return self._original.write(text)
        self._runner.textport_write(text)
        if self._runner.echo:
            self._original.write(text)
        return len(text)

    def flush(self):
        self._original.flush()


class UserCodeRunner:
    """Times, captures and guards every call into user code.

    Nested calls (a callback setting a parameter that fires a Parameter Execute DAT)
    are all recorded in callback_costs, but only the outermost one counts toward the
    frame cost, so main-thread time is not counted twice.
    """

    def __init__(self, main_ident, echo):
        self.main_ident = main_ident
        self.echo = echo
        self.textport = []
        self.errors = []
        self.callback_costs = []
        self.pending_frame_cost = 0.0
        self._partial_line = ""
        self._depth = 0
        self._saved_streams = None

    # -- textport ---------------------------------------------------------------
    def textport_write(self, text):
        text = self._partial_line + text
        *lines, self._partial_line = text.split("\n")
        self.textport.extend(lines)

    def textport_lines(self, text):
        """Add whole lines directly (debug(), error reports), echoing if asked."""
        if self._partial_line:  # an unfinished print() line ends here
            self.textport.append(self._partial_line)
            self._partial_line = ""
        for line in text.rstrip("\n").split("\n"):
            self.textport.append(line)
            if self.echo and self._saved_streams:
                self._saved_streams[0].write(line + "\n")
            elif self.echo:
                sys.stdout.write(line + "\n")

    def _enter(self):
        if self._depth == 0:
            self._saved_streams = (sys.stdout, sys.stderr)
            sys.stdout = TextportStream(self, self._saved_streams[0])
            sys.stderr = TextportStream(self, self._saved_streams[1])
        self._depth += 1

    def _leave(self):
        self._depth -= 1
        if self._depth == 0:
            if self._partial_line:
                self.textport.append(self._partial_line)
                self._partial_line = ""
            sys.stdout, sys.stderr = self._saved_streams
            self._saved_streams = None

    # -- running ----------------------------------------------------------------
    def call(self, frame, op_path, callback_name, fn, *args, propagate=False):
        """Call fn(*args) as user code. Returns (ok, result).

        With propagate=False an exception is recorded in `errors`, printed to the
        textport, and (False, None) returned, as TD carries on after a failing
        callback. With propagate=True (module imports) it is re-raised after timing.
        """
        outermost = self._depth == 0
        self._enter()
        start = time.perf_counter()
        try:
            return True, fn(*args)
        except Exception as exc:
            if propagate:
                raise
            self.record_error(op_path, callback_name, exc)
            return False, None
        finally:
            cost = time.perf_counter() - start
            self.callback_costs.append((frame, op_path, callback_name, cost))
            if outermost:
                self.pending_frame_cost += cost
            self._leave()

    def record_error(self, op_path, callback_name, exc):
        text = format_user_traceback(exc)
        self.errors.append((op_path, callback_name, text))
        self.textport_lines(f"Traceback from {op_path} {callback_name}:\n{text}")


def format_user_traceback(exc):
    """The traceback without the fake's own frames above the user code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))
