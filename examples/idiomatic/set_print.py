#!/usr/bin/env python3
"""Spec section 3, the pythonic way: the loader logs on the "pybpfload" logger."""

import logging
import sys

from pybpfload import Object
from pybpfload.demo import bundled_object

logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="[%(levelname)s] %(name)s: %(message)s")

with Object.open(sys.argv[1] if len(sys.argv) > 1 else bundled_object()) as obj:
    obj.load()
