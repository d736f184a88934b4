"""The ``python`` kind: call a Python function for each event (``func(event_name, data)``).

Importing this package registers the kind. Its modules, each importing only those after it:

- :mod:`.listener`: :class:`PythonListener`: options, the rendered call, delivery; and the
  function listeners declared for the default app (``@eventisc.listener``);
- :mod:`.errors`: what the function raises, as eventisc's errors;
- :mod:`.options`: the JSON Schema of the options, and the import of ``callable``.
"""

from __future__ import annotations

from .errors import translate_error
from .listener import (
    PythonListener,
    declare,
    declared_listeners,
    forget_declared,
    function_listener,
)
from .options import PYTHON_SCHEMA, load_callable

__all__ = [
    "PYTHON_SCHEMA",
    "PythonListener",
    "declare",
    "declared_listeners",
    "forget_declared",
    "function_listener",
    "load_callable",
    "translate_error",
]
