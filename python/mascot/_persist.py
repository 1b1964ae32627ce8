"""On-disk formats of a trained model: the model directory, and the side file a checkpointed fit
keeps next to the core's checkpoint.

Model directory (``MF.save`` / ``MF.load``; ``mascot_train --save`` writes the first three):

- ``P.npy``, ``Q.npy``: the factors (n x k float32, original id order), written and read by the
  core (``_core.save_model`` renames the finished temporary directory into place);
- ``model.json``: ``format`` ("mascot-model"), ``version``, ``mascot_version``, ``n_users``,
  ``n_items``, ``k``, ``method``, ``id_order``, ``params`` (the estimator's parameters; absent
  in a model of ``mascot_train``, whose run report's config stands in), ``report`` (the run
  report), ``train_mean`` (LIBMF's b) and the ``has_*`` flags of the optional files;
- optional, each readable by ``numpy.load``: ``user_ids.npy`` / ``item_ids.npy`` (the raw id of
  each dense id) and ``seen_indptr.npy`` + ``seen_indices.npy`` (the training pairs, CSR per
  user).

Checkpoint side file: ``DIR/python_ids.npz`` holds what ``MF.resume`` needs and the core's
checkpoint does not keep: the id maps of the fit and the user / item / rating counts it trained
with.  Python writes it into the directory the core owns, before the core's first checkpoint
there, under a name the core's writer never removes.

Everything read here is user input (fuzzed by fuzz/python/model_json.py): every problem is one
ValueError naming the file (or an OSError for I/O).  The estimator (``mascot.model``) decides
what the parameters mean and checks the id maps and pairs themselves; this module only moves
bytes and checks the formats.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _core, _files

MODEL_FORMAT = "mascot-model"
MODEL_VERSION = 1
IDS_FILE = "python_ids.npz"  # not a name the core's checkpoint writer ever removes


# ------------------------------------------------------------------ model directory
def write_model(path: str, P: np.ndarray, Q: np.ndarray, *, method: str, params: dict, report: dict | None,
                user_ids: np.ndarray | None, item_ids: np.ndarray | None,
                seen: tuple[np.ndarray, np.ndarray] | None, train_mean: float | None) -> None:
    """Writes the model directory ``path`` atomically (the whole directory is renamed in).
    ``seen``: the training pairs as (indptr, indices), or None."""
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "mascot_version": _core.__version__,
            "n_users": int(P.shape[0]), "n_items": int(Q.shape[0]),
            "k": int(P.shape[1]), "method": method, "id_order": "original",
            "params": params, "report": report,
            "train_mean": train_mean, "has_user_ids": user_ids is not None,
            "has_item_ids": item_ids is not None, "has_seen": seen is not None}
    arrays = {"user_ids.npy": user_ids, "item_ids.npy": item_ids}
    if seen is not None:
        arrays["seen_indptr.npy"], arrays["seen_indices.npy"] = seen
    files = []
    for name, a in arrays.items():
        if a is not None:
            buf = io.BytesIO()
            np.save(buf, np.asarray(a), allow_pickle=False)
            files.append((name, buf.getvalue()))
    _core.save_model(path, np.ascontiguousarray(P), np.ascontiguousarray(Q),
                     json.dumps(meta, default=_json_default), files)


def read_model(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """(P, Q, model.json checked against them) of the model directory ``path``."""
    P, Q = _core.load_model(os.fspath(path))
    return P, Q, _read_model_json(path, P, Q)


@dataclass
class ModelExtras:
    """The optional parts of a model directory (None where absent)."""

    user_ids: np.ndarray | None
    item_ids: np.ndarray | None
    seen: tuple[np.ndarray, np.ndarray] | None  # (indptr, indices)
    train_mean: float | None


def read_extras(path: Path, meta: dict) -> ModelExtras:
    """The optional files of model directory ``path``, checked against ``meta``'s ``has_*`` flags."""
    def arr(name: str) -> np.ndarray | None:
        f = path / name
        if not f.exists():
            return None
        try:
            return np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"{f}: not a readable .npy file ({e})") from None

    def check(flag: str, present: bool, name: str) -> None:
        if meta.get(flag) and not present:
            raise ValueError(f"{path}: model.json says {name} is saved but it is missing")

    a_u, a_i = arr("user_ids.npy"), arr("item_ids.npy")
    check("has_user_ids", a_u is not None, "user_ids.npy")
    check("has_item_ids", a_i is not None, "item_ids.npy")
    ip, ix = arr("seen_indptr.npy"), arr("seen_indices.npy")
    check("has_seen", ip is not None and ix is not None, "the training pairs (seen_indptr.npy, seen_indices.npy)")
    if (ip is None) != (ix is None):
        raise ValueError(f"{path}: seen_indptr.npy and seen_indices.npy must be saved together")
    tm = meta.get("train_mean")
    train_mean = float(tm) if isinstance(tm, (int, float)) and not isinstance(tm, bool) else None
    return ModelExtras(a_u, a_i, None if ip is None else (ip, ix), train_mean)


def _read_model_json(path: Path, P: np.ndarray, Q: np.ndarray) -> dict:
    """Reads and checks path/model.json against the loaded P and Q; every problem is one
    ValueError (or OSError for I/O) naming the file.  The bytes may be anything: the model
    directory is user input (fuzzed by fuzz/python/model_json.py)."""
    f = path / "model.json"
    try:
        raw = f.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: model.json is missing") from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{f}: not valid JSON (not UTF-8 at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{f}: not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{f}: not valid JSON (nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise ValueError(f"{f}: not a MASCOT model (format tag missing)")
    for key, n in (("n_users", P.shape[0]), ("n_items", Q.shape[0]), ("k", P.shape[1])):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v != n:
            raise ValueError(f"{path}: model.json shapes do not match P.npy/Q.npy "
                             f"({key} is {_short_json(v)} in model.json, {n} in the .npy files)")
    if not isinstance(meta.get("params", {}), dict) or not isinstance(meta.get("method", "fp32"), str):
        raise ValueError(f"{f}: invalid 'params' or 'method' (expected an object and a string)")
    return meta


def _json_default(v: Any) -> Any:
    """json.dumps for NumPy scalars and arrays in parameters (method_params values)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"{type(v).__name__} is not JSON serializable")


def _short_json(v: Any) -> str:
    try:
        s = json.dumps(v)
    except (ValueError, RecursionError):
        s = type(v).__name__
    return s if len(s) <= 40 else s[:40] + "..."


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# ------------------------------------------------------------------ checkpoint side file
def write_ids_file(ckpt: str, n_users: int, n_items: int, n_train: int,
                   user_ids: np.ndarray | None, item_ids: np.ndarray | None) -> None:
    """Writes ckpt/python_ids.npz (atomically: temp file, fsync, rename): the id maps of a
    checkpointed fit and the user / item / rating counts it trained with.  Called at the end of
    the first epoch, before the core writes its first checkpoint, so every checkpoint of a fit
    has it."""
    arrays = {"n_users": np.int64(n_users), "n_items": np.int64(n_items), "n_train": np.int64(n_train)}
    if user_ids is not None:
        arrays["user_ids"] = user_ids
    if item_ids is not None:
        arrays["item_ids"] = item_ids
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    _files.atomic_write(os.path.join(ckpt, IDS_FILE), buf.getvalue())


def remove_ids_file(ckpt: str, rmdir: bool) -> None:
    """Removes ckpt/python_ids.npz (and the directory, when ``rmdir`` and it is empty now)."""
    try:
        os.remove(os.path.join(ckpt, IDS_FILE))
        if rmdir:
            os.rmdir(ckpt)
    except OSError:
        pass


def read_ids_file(ckpt: str, info: dict) -> dict:
    """ckpt/python_ids.npz checked against the checkpoint (``info``: ``_core.read_checkpoint``):
    {} when absent (a checkpoint of mascot_train), else n_users, n_items and the id maps present
    (user_ids / item_ids)."""
    f = os.path.join(ckpt, IDS_FILE)
    if not os.path.exists(f):
        return {}
    try:
        with np.load(f, allow_pickle=False) as z:
            ids = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 (a damaged zip raises zipfile / zlib errors too)
        raise ValueError(f"checkpoint {f}: not a readable .npz file ({first_line(e)})") from None
    shape = []
    for key in ("n_users", "n_items", "n_train"):
        v = ids.get(key)
        if v is None or v.shape != () or v.dtype.kind not in "iu":
            raise ValueError(f"checkpoint {f}: {key} is missing or not an integer")
        shape.append(int(v))
    if shape != [info["n_users"], info["n_items"], info["n_train"]]:
        raise ValueError(f"checkpoint {f} does not belong to this checkpoint (it describes {shape[0]} users, "
                         f"{shape[1]} items, {shape[2]} ratings; the checkpoint {info['n_users']}, "
                         f"{info['n_items']}, {info['n_train']}): remove it or resume another directory")
    out = {"n_users": shape[0], "n_items": shape[1]}
    for key, n in (("user_ids", shape[0]), ("item_ids", shape[1])):
        if key in ids:
            if ids[key].shape != (n,):
                raise ValueError(f"checkpoint {f}: {key} has shape {ids[key].shape}, expected ({n},)")
            out[key] = ids[key]
    return out
