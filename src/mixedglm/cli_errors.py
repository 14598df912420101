"""How the command line reports failures and warnings: one line each.

* a :class:`~mixedglm.errors.MixedGLMError` (the user's model, data, options or files):
  ``mixedglm: error: <message>`` and exit code 2;
* an operating-system error (a file that vanished, a full disk): the same, naming the file;
* any other exception is a bug in mixedglm: ``mixedglm: internal error (a bug, please
  report it): <type>: <message>`` and exit code 1 (the traceback only with
  ``MIXEDGLM_DEBUG=1``);
* mixedglm's warnings (convergence, large grids) as ``mixedglm: warning: <message>``, each
  once; other libraries' warnings (numpy's floating-point ones) are not shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator

from mixedglm.errors import ConvergenceWarning, MixedGLMError, ModelNote, QuadratureWarning

EXIT_OK, EXIT_BUG, EXIT_USER = 0, 1, 2


def first_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type's name)."""
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__


def _os_message(err: OSError) -> str:
    reason = err.strerror or first_line(err)
    return f"{err.filename}: {reason}" if err.filename else reason


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show each distinct warning once, on one line of stderr."""
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = first_line(message) if isinstance(message, BaseException) else str(message)
        if text in seen:
            return
        seen.add(text)
        word = "note" if category.__name__ == "ModelNote" else "warning"
        with contextlib.suppress(OSError):
            sys.stderr.write(f"mixedglm: {word}: {text}\n")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's and the libraries' own: not the user's
        for category in (ConvergenceWarning, ModelNote, QuadratureWarning):
            warnings.simplefilter("always", category)
        warnings.showwarning = show
        yield


def run_reporting_errors(run: Callable[[], None]) -> int:
    """Run ``run`` and turn whatever it raises into one line and an exit code."""
    try:
        run()
    except MixedGLMError as err:
        sys.stderr.write(f"mixedglm: error: {first_line(err)}\n")
        return EXIT_USER
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as err:
        sys.stderr.write(f"mixedglm: error: {_os_message(err)}\n")
        return EXIT_USER
    except KeyboardInterrupt:
        sys.stderr.write("mixedglm: interrupted\n")
        return 130
    except MemoryError:
        sys.stderr.write(
            "mixedglm: error: out of memory (fewer quadrature points, or a smaller model)\n"
        )
        return EXIT_USER
    except Exception as err:
        if os.environ.get("MIXEDGLM_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(
            f"mixedglm: internal error (a bug in mixedglm, please report it with the command "
            f"line): {type(err).__name__}: {first_line(err)}\n"
        )
        return EXIT_BUG
    return EXIT_OK
