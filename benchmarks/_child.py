"""How every benchmark starts its Python children (one policy for all of them).

A user's interpreter imports from .pyc files, so children run with
PYTHONDONTWRITEBYTECODE removed (their first run writes the .pyc, later runs
use it), and every benchmark prints :func:`describe` so that a figure taken
in an environment without .pyc (``PYTHONDONTWRITEBYTECODE=1``, every module
compiled on every start) is labelled as such.  ``--no-pyc`` style runs set
``keep_no_pyc=True`` to measure that case on purpose.
"""

from __future__ import annotations

import os
import sys
from typing import Dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(keep_no_pyc: bool = False, **extra: str) -> Dict[str, str]:
    """The environment of a Python child: PYTHONDONTWRITEBYTECODE dropped unless ``keep_no_pyc``."""
    env = dict(os.environ)
    if not keep_no_pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def describe(keep_no_pyc: bool = False) -> str:
    """One line saying how the Python children run."""
    no_pyc = keep_no_pyc and bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    how = "PYTHONDONTWRITEBYTECODE=1: no .pyc, every module compiled each start" if no_pyc else "PYTHONDONTWRITEBYTECODE unset: imports from .pyc"
    return f"children: {os.path.realpath(sys.executable)} (python {sys.version.split()[0]}), {how}"
