"""The experiment harness: runs an experiment's grid of training runs, resumes it, writes its
outputs; and the command line (``mascot experiment``, ``python -m mascot.experiments``).

Data flow: ``main(argv)`` parses the options -> the experiment's grid (``definitions.py``) lists
its :class:`Cell` s (dataset x method x k x hyper-parameters x repeat) -> the options, the grid
and the output paths are checked before anything is written (:func:`_prepare`) -> for every cell
whose raw report ``<out>/<experiment>/runs/<cell-id>.json`` is missing (or damaged, or was
written for a different cell, or trained with another thread count), the dataset is loaded (once
per process) and the cell is trained in-process through ``mascot.MF`` -> the report, tagged with
the cell under ``"cell"``, is written atomically -> when every cell is done, the experiment's
outputs (``runs.csv``, ``epochs.csv``, its tables, PNG plots and ``report.md``) are rebuilt from
the reports of the grid's cells only (``mascot.analysis``) and published together, all or none
(``mascot._files.all_or_none``).

An interruption (Ctrl-C, at any point) keeps every finished cell; the cell in flight leaves
nothing behind and the next run resumes with it.  Outputs are written only after the whole grid
is done.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from .. import _files, _progress, analysis
from . import definitions
from .grid import QUICK_DATASET, SWITCHING_METHODS, Cell, Context, Experiment, Options, fmt_value

MAX_REPEATS = 1000  # --repeats bound: a larger grid is a typo, not an experiment


# --------------------------------------------------------------------------- running
class Progress:
    """Runs done of an experiment, its ETA and the run in flight, on stderr (``mascot._progress``):
    a tqdm bar on a terminal, else one line per run, ``[####....] 3/10  30%  eta 1m05s  LABEL``.
    ``done`` runs were found finished; the ETA counts only the runs of this process."""

    def __init__(self, total: int, quiet: bool = False, stream=None, done: int = 0):
        self.total, self.done, self.quiet = total, done, quiet
        self.ran = 0  # cells run by this process (``done`` also counts the ones found finished)
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self._bar = None
        if not quiet and total:
            self._bar = _progress.terminal_bar(self.stream, total=total, initial=done, unit="run")

    def show(self, label: str) -> None:
        if self.quiet or self.total == 0:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(label)
            return
        frac = self.done / self.total
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        el = time.monotonic() - self.t0
        eta = "?" if self.ran == 0 else _dur(el / self.ran * (self.total - self.done))
        self.stream.write(f"[{bar}] {self.done}/{self.total} {100 * frac:3.0f}%  eta {eta}  {label}\n")
        self.stream.flush()

    def step(self) -> None:
        self.done += 1
        self.ran += 1
        if self._bar is not None:
            self._bar.update(1)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _dur(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def fit_cell(cell: Cell, dataset: Any, threads: int) -> dict:
    """Trains one cell in-process and returns its run report (the tests wrap this)."""
    from ..model import MF
    m = MF(**cell.mf_kwargs(threads))
    test = dataset.test if len(dataset.test) else None
    m.fit(dataset.train, test, name=dataset.name)
    return m.report_


def warm_up(cell: Cell, dataset: Any, threads: int) -> None:
    """One untimed, unrecorded epoch of fp32 on the cell's dataset and device, so the first
    timed cell of a process does not pay for first-touch page faults and thread start-up."""
    from ..model import MF
    try:
        MF(k=cell.k, method="fp32", epochs=1, device=cell.device, threads=threads,
           seed=cell.seed).fit(dataset.train, name=dataset.name)
    except (RuntimeError, ValueError):
        pass  # the timed cell reports the error itself


def _resolved_threads(threads: int) -> int:
    """The thread count the core runs with for ``--threads threads`` (Context::resolved_threads:
    ``threads``, or every core the host reports when 0, at least 1) -- what a run report's
    top-level ``"threads"`` holds."""
    from .. import _core
    return int(_core.resolved_threads(threads))


def _stored_report(path: Path, cell: Cell, threads: int | None = None) -> tuple[dict | None, str | None]:
    """(the stored report of ``cell``, None) if it is complete and was written for this very cell
    (and, when ``threads`` is given, trained with that many threads), else (None, why not) -- why
    is None when there is no report at all."""
    if not os.path.lexists(path):
        return None, None
    if not path.is_file():  # a FIFO would block the read; the rename replaces it
        return None, "not a regular file"
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return None, f"unreadable ({e.__class__.__name__})"
    why = _report_problem(rep, cell, threads)
    return (None, why) if why else (rep, None)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _report_problem(rep: Any, cell: Cell, threads: int | None = None) -> str | None:
    """Why ``rep`` cannot stand for ``cell`` (None: it can): the checks cover every field the
    analysis reads, so a report that passes never breaks or blanks the outputs.  ``threads`` (the
    resolved thread count of this run, :func:`_resolved_threads`) is checked against the report's
    ``"threads"``: times measured with another thread count are not repeats of this run's.  The
    thread count is not part of the cell (nor of its id), so reports written before it was checked
    stay valid when their thread count matches."""
    if not isinstance(rep, dict) or rep.get("format") != "mascot-run-report":
        return "not a run report"
    if rep.get("cell") != json.loads(json.dumps(cell.as_dict())):
        return "written for another cell"
    for key in ("config", "dataset", "totals"):
        if not isinstance(rep.get(key), dict):
            return f"{key!r} is not an object"
    cfg, tot, eps = rep["config"], rep["totals"], rep.get("epochs")
    if (cfg.get("method"), cfg.get("k"), cfg.get("epochs")) != (cell.method, cell.k, cell.epochs):
        return "its config is not the cell's"
    if threads is not None and rep.get("threads") != threads:
        return f"trained with {rep.get('threads')} thread(s), this run uses {threads}"
    if tot.get("interrupted") is not False:
        return "interrupted" if tot.get("interrupted") else "totals.interrupted is missing"
    if not isinstance(eps, list) or not all(isinstance(e, dict) for e in eps):
        return "'epochs' is not a list of objects"
    if len(eps) != cell.epochs or tot.get("epochs_run") != cell.epochs:
        return f"{len(eps)} of {cell.epochs} epochs"
    if not _is_number(tot.get("train_seconds")):
        return "totals.train_seconds is not a number"
    for key in ("eval_seconds", "setup_seconds", "updates_per_second", "final_test_rmse"):
        if tot.get(key) is not None and not _is_number(tot[key]):  # null: not measured / non-finite
            return f"totals.{key} is not a number"
    for e in eps:
        if not _is_number(e.get("train_seconds")) or not (e.get("test_rmse") is None or _is_number(e["test_rmse"])):
            return "an epoch's train_seconds or test_rmse is not a number"
    return None


def _done_report(path: Path, cell: Cell, threads: int | None = None) -> dict | None:
    """The stored report of ``cell`` if it is complete and was written for this very cell."""
    return _stored_report(path, cell, threads)[0]


class UsageError(Exception):
    """Bad options or grid (exit status 2, one-line message)."""


def _validate(cells: list[Cell], threads: int) -> None:
    """Builds (without data) the estimator of every distinct configuration, so a bad option or
    a core that lacks one fails before any training starts."""
    from ..model import MF
    seen = set()
    for c in cells:
        key = (c.method, c.k, c.epochs, c.device, c.params)
        if key in seen:
            continue
        seen.add(key)
        try:
            MF(**c.mf_kwargs(threads))
        except TypeError as e:  # an MF keyword this build does not have
            raise UsageError(f"cell {c.cell_id}: this mascot build does not support it ({e})") from None
        except ValueError as e:
            raise UsageError(f"cell {c.cell_id}: {e}") from None


def _cuda_reason(cell: Cell, threads: int) -> str:
    """The core's one-line reason why the CUDA backend does not take ``cell``'s configuration
    ('' when it does)."""
    from .. import _core
    from ..model import MF
    why = getattr(_core, "cuda_unsupported_reason", None)
    return why(MF(**cell.mf_kwargs(threads))._config()) if why else ""


def _cuda_cells(cells: list[Cell], requested: str, threads: int) -> tuple[list[Cell], list[str]]:
    """The cells on cuda whose configuration the CUDA backend does not take (random_fp16,
    grad_stats): with ``--device cuda`` a :class:`UsageError` naming the first such cell and the
    core's reason; with ``auto`` the experiment runs on cpu -- every cell of it, so its tables
    compare times of one device (a cuda fp32 baseline against cpu shares would say nothing) --
    and the returned notes say so in one line."""
    first: dict[str, Cell] = {}  # reason -> the first cell it stops
    for c in cells:
        why = _cuda_reason(c, threads) if c.device == "cuda" else ""
        if why and requested == "cuda":
            raise UsageError(f"cell {c.cell_id}: {why} (--device auto runs such an experiment on cpu)")
        if why:
            first.setdefault(why, c)
    if not first:
        return cells, []
    n = sum(1 for c in cells if c.device == "cuda")
    moved = [dataclasses.replace(c, device="cpu") if c.device == "cuda" else c for c in cells]
    why, cell = next(iter(first.items()))
    why = why.split("; use --device")[0]  # the core's advice is for --device cuda
    return moved, [f"--device auto runs all {n} cells on cpu: the CUDA backend does not take some of "
                   f"them (e.g. {cell.cell_id}: {why})"]


def _resolve_device(device: str) -> str:
    """The device cells run on: ``auto`` becomes ``cuda`` or ``cpu`` as the core would choose
    (so cell ids name the device that ran); ``cuda`` without a usable GPU is a usage error."""
    from .. import HAS_CUDA, cuda_unavailable_reason
    if device == "cpu":
        return device
    if device not in ("auto", "cuda"):
        raise UsageError(f"unknown device {device!r} (valid: auto, cpu, cuda)")
    why = cuda_unavailable_reason()
    if device == "auto":
        return "cpu" if why else "cuda"
    if not HAS_CUDA:
        raise UsageError("device 'cuda' requested, but this build of MASCOT has no CUDA backend "
                         "(use --device cpu or auto)")
    if why:
        raise UsageError(f"device 'cuda' requested, but {why}; use --device cpu or auto")
    return device


def _name_max(directory: Path) -> int:
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _check_paths(exp: Experiment, cells: list[Cell], root: Path) -> None:
    """Fails (:class:`UsageError`) before anything is trained or written when an output could not
    be written: a component of OUT/NAME/runs that is not a directory, an output file or a cell's
    report that is a directory, a cell file name longer than the file system allows."""
    rundir = root / "runs"
    q = rundir
    while not os.path.lexists(q) and q.parent != q:
        q = q.parent
    if not q.is_dir():
        raise UsageError(f"cannot write outputs under {rundir}: {q} is not a directory")
    if not os.access(q, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write outputs under {rundir}: {q} is not writable")
    limit = _name_max(q)
    for c in cells:
        name = f"{c.cell_id}.json"
        if len(os.fsencode(name)) > limit:
            raise UsageError(f"cell {c.cell_id[:60]}...: its report's file name is {len(os.fsencode(name))} "
                             f"bytes, more than this file system allows ({limit}); use a shorter dataset name")
    names = [f"runs/{c.cell_id}.json" for c in cells] + ["runs.csv", "epochs.csv", "report.md", *exp.files]
    for n in names:
        if (root / n).is_dir():
            raise UsageError(f"cannot write {root / n}: it is a directory")


def _default_warmup() -> int:
    from ..model import MF
    return int(MF(preset="paper").warmup)


def _check_warmup(cells: list[Cell], quick: bool) -> None:
    """A g-switching cell whose epochs do not go past its warm-up would never measure a q-error
    (measurements start at epoch w, 0-based): its run is mascot-n1 under another name."""
    default = None
    for c in cells:
        if c.method not in SWITCHING_METHODS or dict(c.params).get("random_fp16") is not None:
            continue
        w = dict(c.params).get("warmup")
        if w is None:
            default = _default_warmup() if default is None else default
            w = default
        if c.epochs <= w:
            raise UsageError(f"cell {c.cell_id}: {c.epochs} epoch(s) do not go past the g-switching warm-up "
                             f"(w = {w}), so g-switching would never measure; use --epochs >= {w + 1}"
                             + ("" if quick else " or --quick"))


def _prepare(opts: Options) -> tuple[Experiment, Options, list[Cell], Path, list[str]]:
    """Everything that can fail on bad input, before anything is trained or written: the device,
    the grid (distinct cell ids), the epochs against the warm-up, every configuration
    (:func:`_validate`), the configurations CUDA does not take (:func:`_cuda_cells`) and the output
    paths.  Returns the experiment, the options (``device`` as asked), the cells (each naming the
    device it runs on), the output directory and one-line notes for stderr."""
    exp = definitions.EXPERIMENTS[opts.name]
    cells = exp.grid(dataclasses.replace(opts, device=_resolve_device(opts.device)))
    seen: dict[str, Cell] = {}
    for c in cells:
        if c.cell_id in seen:
            other = seen[c.cell_id]
            if other.dataset != c.dataset:
                raise UsageError(f"datasets {other.dataset!r} and {c.dataset!r} give the same cell ids "
                                 f"({c.cell_id}); name each dataset once, in one spelling")
            raise UsageError(f"the grid has the cell {c.cell_id} twice")
        seen[c.cell_id] = c
    root = opts.out / exp.name
    _check_warmup(cells, opts.quick)
    _validate(cells, opts.threads)
    cells, notes = _cuda_cells(cells, opts.device, opts.threads)
    _check_paths(exp, cells, root)
    return exp, opts, cells, root, notes


def run_experiment(opts: Options) -> int:
    """Runs (or resumes) one experiment and writes its outputs; returns the exit status."""
    exp, opts, cells, root, device_notes = _prepare(opts)
    rundir = root / "runs"
    threads = _resolved_threads(opts.threads)

    cache: dict[str, Any] = {}

    def load_dataset(name: str):
        if name not in cache:
            from .. import data
            try:
                cache[name] = data.load(name)
            except (FileNotFoundError, ValueError) as e:
                raise UsageError(f"dataset {name!r}: {e}") from None
        return cache[name]

    reports: dict[str, dict] = {}
    todo = []
    notes = [f"mascot experiment {exp.name}: note: {n}" for n in device_notes]
    for c in cells:
        rep, why = _stored_report(rundir / f"{c.cell_id}.json", c, threads)
        if rep is None:
            todo.append(c)
            if why:
                notes.append(f"mascot experiment {exp.name}: note: runs/{c.cell_id}.json: {why}; "
                             f"running the cell again")
        else:
            reports[c.cell_id] = rep
    for ds in dict.fromkeys(c.dataset for c in todo):  # fail on a missing dataset before training
        load_dataset(ds)

    prog = Progress(len(cells), opts.quiet, done=len(cells) - len(todo))
    rundir.mkdir(parents=True, exist_ok=True)
    for note in notes:
        print(note, file=sys.stderr)
    if not opts.quiet:
        print(f"mascot experiment {exp.name}: {len(cells)} runs, {len(cells) - len(todo)} already done "
              f"({rundir})", file=sys.stderr)
    # Repeat-major order within a dataset (all settings of repeat 0, then of repeat 1, ...), so
    # a slow phase of a shared host hits every setting alike rather than one setting's repeats.
    dsi = {d: i for i, d in enumerate(dict.fromkeys(c.dataset for c in cells))}
    todo.sort(key=lambda c: (dsi[c.dataset], c.repeat))
    warmed: set[str] = set()
    try:
        for c in todo:
            if c.dataset not in warmed:  # untimed: first-touch page faults, thread start-up
                warm_up(c, load_dataset(c.dataset), opts.threads)
                warmed.add(c.dataset)
            params = " ".join(f"{n}={fmt_value(v)}" for n, v in c.params)
            prog.show(f"{c.dataset} {c.method} k={c.k} {params} r{c.repeat}")
            try:
                rep = fit_cell(c, load_dataset(c.dataset), opts.threads)
            except (RuntimeError, ValueError, MemoryError) as e:  # the core's one-line errors
                prog.finish()
                print(f"mascot experiment {exp.name}: error: cell {c.cell_id}: {e}", file=sys.stderr)
                return 1
            if (rep.get("totals") or {}).get("interrupted"):
                raise KeyboardInterrupt
            rep["cell"] = c.as_dict()
            analysis.atomic_write_text(rundir / f"{c.cell_id}.json", json.dumps(rep, indent=1))
            reports[c.cell_id] = rep
            prog.step()
        prog.show("done")
    except KeyboardInterrupt:
        prog.finish()
        print(f"mascot experiment {exp.name}: interrupted after {prog.done} of {len(cells)} runs; "
              f"run the same command again to resume", file=sys.stderr)
        return 130
    prog.finish()

    ordered = [{**reports[c.cell_id], "_source": str(rundir / f"{c.cell_id}.json")} for c in cells]
    # NAME-foldN datasets are folds of NAME: the tables average them with NAME's runs as repeats
    runs = analysis.merge_folds(analysis.runs_frame(ordered))
    epochs = analysis.merge_folds(analysis.epochs_frame(ordered))
    ctx = Context(exp, opts, cells, root, runs, epochs, ordered, load_dataset)
    try:  # the tables, plots and report are published together at the end, or none of them
        with _files.all_or_none():
            analysis.write_csv(runs, root / "runs.csv")
            analysis.write_csv(epochs, root / "epochs.csv")
            sections = exp.outputs(ctx)
            analysis.atomic_write_text(root / "report.md", _report(ctx, sections))
    except KeyboardInterrupt:
        print(f"mascot experiment {exp.name}: interrupted while writing the outputs (all {len(cells)} "
              f"runs are kept); run the same command again to rebuild them", file=sys.stderr)
        return 130
    if not opts.quiet:
        print(f"mascot experiment {exp.name}: wrote {root / 'report.md'}, runs.csv, epochs.csv and plots",
              file=sys.stderr)
    return 0


def _report(ctx: Context, sections: list[str]) -> str:
    from .. import __version__
    runs, o = ctx.runs, ctx.options
    devices = ", ".join(sorted({str(d) for d in runs["device"]}))
    grid = [f"- datasets: {', '.join(dict.fromkeys(c.dataset for c in ctx.cells))}",
            f"- methods: {', '.join(dict.fromkeys(c.method for c in ctx.cells))}",
            f"- k: {', '.join(str(k) for k in dict.fromkeys(c.k for c in ctx.cells))}; "
            f"epochs: {ctx.cells[0].epochs}; repeats: {max(c.repeat for c in ctx.cells) + 1} "
            f"(seed 42 + repeat)"]
    varying = sorted({n for c in ctx.cells for n, _ in c.params})
    for n in varying:
        vals = list(dict.fromkeys(fmt_value(dict(c.params).get(n, "default")) for c in ctx.cells))
        grid.append(f"- {n}: {', '.join(vals)}")
    head = [
        f"# Experiment `{ctx.experiment.name}` — reproduces {ctx.experiment.reproduces}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        f"`python -m mascot.experiments {' '.join(o.argv)}` (mascot {__version__}"
        f"{', quick mode: tiny data, few epochs — not comparable with the paper' if o.quick else ''}).",
        "",
        f"Device (this project): {devices}{'' if o.device == 'cpu' else f' (asked: --device {o.device})'}. "
        f"Paper's device: {analysis.PAPER['device']}.",
        "",
        f"Grid ({len(ctx.cells)} runs, raw reports in `runs/`, one row each in `runs.csv`, per epoch "
        "in `epochs.csv`):",
        "",
        *grid,
        "",
        "Times are the report's `totals.train_seconds` (SGD passes incl. g-switching's estimation, "
        "without test evaluation), means over repeats.",
        "",
    ]
    claim = analysis.PAPER["claims"].get(ctx.experiment.name)
    tail = ["", "## The paper says", "", claim, ""] if claim else []
    return "\n".join(head + sections + tail) + "\n"


# --------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse's own print the whole usage first)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"mascot experiment: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mascot experiment",
        description="Run (or resume) an experiment that reproduces part of the paper's evaluation; "
                    "outputs go to OUT/NAME/ (runs/*.json, runs.csv, epochs.csv, *.png, report.md).",
        epilog="experiments (full grid, estimated time on 2 CPU cores): " + "; ".join(
            f"{e.name}: {e.reproduces}, {e.full_time}" for e in definitions.EXPERIMENTS.values())
        + ". See docs/experiments.md.")
    p.add_argument("name", choices=[*definitions.EXPERIMENTS, "all"],
                   help="experiment (all = every one in turn)")
    p.add_argument("--quick", action="store_true",
                   help=f"tiny variant ({QUICK_DATASET}, k=32, 3 epochs, 1-2 repeats)")
    p.add_argument("--datasets", nargs="+", metavar="NAME",
                   help="datasets (synthetic names or prepared ones); default depends on the experiment")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu",
                   help="cuda: every cell on the GPU (an error up front for a cell the CUDA backend "
                        "does not take); auto: cuda when usable, an experiment with such cells on cpu")
    p.add_argument("--repeats", type=int, metavar="N",
                   help=f"repeats per setting, 1..{MAX_REPEATS} (default 5, observations: 1; "
                        "quick 1, sensitivity: 2)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="epochs per run (default 50; quick 3); runs with g-switching need more "
                        "than the warm-up (5; quick 1)")
    p.add_argument("--out", type=Path, default=Path("results"), metavar="DIR", help="default: results/")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads (0 = all cores); a stored run of another thread count is run again")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m mascot.experiments NAME [options]``; returns the exit status (0, 1 for a
    failed run or an I/O error, 2 for bad input, 130 when interrupted)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:  # outside an experiment (imports, argument checks)
        print("mascot experiment: interrupted", file=sys.stderr)
        return 130


def _io_error(e: OSError) -> str:
    return f"{e.strerror or e}: {e.filename}" if e.filename else str(e)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["als"]:  # ALS (issue 21) trains its own runs: experiments/als.py
        from .als import main as als_main
        return als_main(argv[1:])
    p = _parser()
    try:
        a = p.parse_args(argv)
    except SystemExit as e:  # argparse printed its one-line error or the help
        return int(e.code or 0)
    for what, v, lo, hi in (("--repeats", a.repeats, 1, MAX_REPEATS), ("--epochs", a.epochs, 1, None),
                            ("--threads", a.threads, 0, None)):
        if v is not None and v < lo:
            print(f"mascot experiment: error: {what} must be >= {lo} (got {v})", file=sys.stderr)
            return 2
        if v is not None and hi is not None and v > hi:
            print(f"mascot experiment: error: {what} must be <= {hi} (got {v})", file=sys.stderr)
            return 2
    for mod in ("pandas", "matplotlib", "scipy"):  # the experiments extra
        try:
            __import__(mod)
        except ImportError:
            print(f"mascot experiment: error: needs {mod} (pip install 'mascot[experiments]')", file=sys.stderr)
            return 2
    try:
        _resolve_device(a.device)
    except UsageError as e:
        print(f"mascot experiment: error: {e}", file=sys.stderr)
        return 2
    datasets = list(dict.fromkeys(a.datasets)) if a.datasets else None  # a repeated name runs once
    names = list(definitions.EXPERIMENTS) if a.name == "all" else [a.name]
    todo = [Options(name=name, quick=a.quick, datasets=datasets, device=a.device, repeats=a.repeats,
                    epochs=a.epochs, out=a.out, threads=a.threads, quiet=a.quiet, argv=[name, *argv[1:]])
            for name in names]
    for opts in todo:  # every experiment's grid and paths before the first one trains
        try:
            _prepare(opts)
        except UsageError as e:
            print(f"mascot experiment {opts.name}: error: {e}", file=sys.stderr)
            return 2
    for opts in todo:
        try:
            rc = run_experiment(opts)
        except UsageError as e:
            print(f"mascot experiment {opts.name}: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"mascot experiment {opts.name}: error: {_io_error(e)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # loading data, writing the outputs: nothing half-written is kept
            print(f"mascot experiment {opts.name}: interrupted; run the same command again to resume",
                  file=sys.stderr)
            return 130
        if rc:
            return rc
    return 0
