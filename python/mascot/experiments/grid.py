"""What an experiment is: its runs (:class:`Cell`), the options it is built from
(:class:`Options`), its declaration (:class:`Experiment`) and what its output function gets
(:class:`Context`).  ``definitions.py`` declares the experiments with these types and
``harness.py`` runs them; this module imports neither.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

QUICK_DATASET = "synthetic-ml10m:0.002"
SWITCHING_METHODS = ("mascot", "mascot-n2", "mascot-naive")  # the methods with g-switching


@dataclass(frozen=True)
class Cell:
    """One training run of an experiment's grid."""

    experiment: str
    dataset: str
    method: str
    k: int
    epochs: int
    repeat: int
    device: str = "cpu"
    params: tuple = ()  # sorted (name, value) pairs of further MF keyword arguments
    base_seed: int = 42

    @property
    def seed(self) -> int:
        return self.base_seed + self.repeat

    @property
    def cell_id(self) -> str:
        """Readable, unique within the experiment, safe as a file name."""
        parts = [self.dataset, self.method, f"k{self.k}", f"e{self.epochs}"]
        parts += [f"{n}{fmt_value(v)}" for n, v in self.params]
        parts += [self.device, f"r{self.repeat}"]
        return re.sub(r"[^A-Za-z0-9._-]", "_", "__".join(parts))

    def mf_kwargs(self, threads: int) -> dict[str, Any]:
        # the paper's experiments run with the paper's settings (mascot.presets: "paper"), whatever
        # MASCOT's defaults become; the cell's own values override them
        return {"preset": "paper", "k": self.k, "method": self.method, "epochs": self.epochs, "device": self.device,
                "threads": threads, "seed": self.seed, **dict(self.params)}

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "cell_id": self.cell_id, "dataset": self.dataset,
                "method": self.method, "k": self.k, "epochs": self.epochs, "repeat": self.repeat,
                "seed": self.seed, "device": self.device, "params": dict(self.params)}


def fmt_value(v: Any) -> str:
    """A parameter value as cell ids and labels show it (flags 1/0, floats %g)."""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def make_cells(experiment: str, datasets: list[str], methods: list[str], ks: list[int], epochs: int,
               repeats: int, device: str, variants: list[dict] | None = None,
               per_method: Callable[[str], dict] | None = None) -> list[Cell]:
    """The cross product dataset x method x k x variant x repeat (variant = extra MF kwargs;
    ``per_method`` adds method-specific kwargs)."""
    cells = []
    for ds in datasets:
        for m in methods:
            for k in ks:
                for var in (variants or [{}]):
                    params = {**(per_method(m) if per_method else {}), **var}
                    for r in range(repeats):
                        cells.append(Cell(experiment, ds, m, int(k), int(epochs), r, device,
                                          tuple(sorted(params.items()))))
    return cells


@dataclass
class Options:
    """What the command line sets (``None`` = the experiment's default for the mode)."""

    name: str
    quick: bool = False
    datasets: list[str] | None = None
    device: str = "cpu"  # as asked: cpu, cuda or auto (the cells name the device they run on)
    repeats: int | None = None
    epochs: int | None = None
    out: Path = Path("results")
    threads: int = 0
    quiet: bool = False
    argv: list[str] = field(default_factory=list)


@dataclass
class Experiment:
    """A declared experiment: its grid for the given options and its outputs."""

    name: str
    reproduces: str
    grid: Callable[[Options], list[Cell]]
    outputs: Callable[[Context], list[str]]  # writes CSV/PNG files, returns Markdown sections
    default_datasets: list[str]
    full_time: str  # estimated time of the full grid on the 2-core development machine
    files: tuple[str, ...] = ()  # the files ``outputs`` may write into OUT/NAME (checked up front)


@dataclass
class Context:
    """What an experiment's output function gets."""

    experiment: Experiment
    options: Options
    cells: list[Cell]
    out: Path
    runs: Any  # pandas DataFrame, one row per run (analysis.runs_frame)
    epochs: Any  # pandas DataFrame, one row per run and epoch (analysis.epochs_frame)
    reports: list[dict]
    load_dataset: Callable[[str], Any]
