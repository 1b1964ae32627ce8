"""Experiments that reproduce the paper's evaluation: ``mascot experiment NAME`` (or
``python -m mascot.experiments NAME``).

Modules, imported one way: ``grid`` (what an experiment is: :class:`Cell`, :class:`Options`,
:class:`Experiment`, :class:`Context`) <- ``definitions`` (each experiment's grid and outputs)
<- ``harness`` (runs a grid, resumes it, writes the outputs; the command line).  This package
re-exports the names its users need.
"""
from __future__ import annotations

from . import definitions, grid, harness
from .grid import QUICK_DATASET, SWITCHING_METHODS, Cell, Context, Experiment, Options, make_cells
from .harness import MAX_REPEATS, Progress, UsageError, fit_cell, main, run_experiment

__all__ = ["Cell", "Context", "Experiment", "Options", "Progress", "UsageError", "definitions", "fit_cell", "grid",
           "harness", "main", "make_cells", "run_experiment", "MAX_REPEATS", "QUICK_DATASET", "SWITCHING_METHODS"]
