"""Presets: named sets of parameter-table values that ``MF(preset=...)`` and
``mascot_train --preset`` apply before the keyword arguments / options given, which override
them.  ``paper`` is built in (the paper's settings, written out value by value in the core, so
that changing MASCOT's defaults never changes it); any other name is a preset file, JSON::

    {"mascot_preset": 1, "params": {"lr": 0.05, "lambda_p": 0.05, ...},
     "valid_rmse": 0.8123, "source": "mascot tune --dataset ml100k ...", "tune": {...}}

The reader is the core's (``mascot/preset.h``, bound as ``_core.read_preset`` /
``_core.parse_preset``): mascot_train and Python accept and refuse the same files, with the same
one-line messages naming the file and the field.  :func:`write_preset` checks what it writes with
that reader first and writes the file atomically (``mascot._files``): a preset that cannot be read
back is never written, and a failed write leaves no partial file.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import Any

from . import _core
from ._files import Outputs
from ._ratings import fs_path

FORMAT = 1  # the "mascot_preset" tag this MASCOT reads and writes
_TABLE = {p["name"]: p for p in _core.param_table()}


def preset_names() -> list[str]:
    """The built-in presets (``["paper"]``)."""
    return list(_core.preset_names())


def read_preset(preset: str | os.PathLike) -> dict[str, Any]:
    """A built-in preset by name, else a preset file: ``{"name", "params", "valid_rmse",
    "source"}``, ``params`` by parameter name with Python values (an option that is off, such as
    ``random_fp16``, as None, MF's spelling).  ValueError / OSError naming the file and field."""
    if isinstance(preset, bool) or not isinstance(preset, (str, bytes, os.PathLike)):
        raise ValueError(f"preset must be a built-in name ({', '.join(preset_names())}) or a preset file's path "
                         f"(got {type(preset).__name__})")
    d = _core.read_preset(fs_path(preset) if not isinstance(preset, str) else preset)
    d["params"] = {n: _python(n, v) for n, v in d["params"].items()}
    return d


def preset_params(preset: str | os.PathLike) -> dict[str, Any]:
    """Just the parameter values of :func:`read_preset`."""
    return read_preset(preset)["params"]


def _python(name: str, v: Any) -> Any:
    return None if _TABLE[name]["check"] == "share_or_off" and v == -1.0 else v


def preset_text(params: Mapping[str, Any], valid_rmse: float | None = None, source: str = "",
                tune: Mapping[str, Any] | None = None, what: str = "<preset>") -> str:
    """The JSON text of a preset, checked by the core's reader (ValueError naming the field)."""
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict of parameter names and values (got {type(params).__name__})")
    if valid_rmse is not None:
        if isinstance(valid_rmse, bool) or not isinstance(valid_rmse, (int, float)) or not math.isfinite(valid_rmse):
            raise ValueError(f"valid_rmse must be a finite number or None (got {valid_rmse!r})")
        valid_rmse = float(valid_rmse)
    doc: dict[str, Any] = {"mascot_preset": FORMAT, "params": {n: _json_value(n, v) for n, v in params.items()},
                           "valid_rmse": valid_rmse, "source": str(source)}
    if tune is not None:
        doc["tune"] = dict(tune)
    try:
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as e:
        raise ValueError(f"preset {what}: cannot be written as JSON: {e}") from None
    _core.parse_preset(text, what)  # the reader mascot_train and MF use: refuses what they would refuse
    return text


def _json_value(name: str, v: Any) -> Any:
    """NumPy scalars as plain numbers; MF's None (off) as JSON null."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str)):
        v = v.item()
    if isinstance(v, tuple):
        v = list(v)
    return v


def write_preset(path: str | os.PathLike, params: Mapping[str, Any], valid_rmse: float | None = None,
                 source: str = "", tune: Mapping[str, Any] | None = None) -> None:
    """Writes a preset file atomically after checking it with the core's reader."""
    text = preset_text(params, valid_rmse, source, tune, what=os.fsdecode(fs_path(path)))
    with Outputs() as out:
        h = out.file(path, "preset")
        out.prepare()
        out.write(h, text)
