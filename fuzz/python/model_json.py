"""Fuzz target: ``MF.load``'s model.json handling (the Python layer of the model-directory
reader; P.npy/Q.npy are the C++ reader, fuzz/targets/model_dir.cc).

Data flow: bytes -> <scratch>/model/model.json next to a fixed valid P.npy (3x2) and Q.npy
(2x2) -> ``mascot.MF.load``.  The contract: it returns a model whose P/Q are those files, or
raises ValueError / OSError with a one-line message naming model.json.  Anything else (another
exception type, a multi-line message) is a finding.

    python fuzz/python/model_json.py [libFuzzer flags] CORPUS_DIR   # with atheris installed
    python fuzz/python/model_json.py --replay SECONDS [--seed S] CORPUS_DIR   # without

``--replay`` (and tests/python/test_fuzz.py) runs the corpus, then seeded random mutations:
byte-level ones and JSON-aware ones (a field replaced by a random JSON value, deep nesting).
"""
from __future__ import annotations

import atexit
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_DIR: Path | None = None


def _model_dir() -> Path:
    global _DIR
    if _DIR is None:
        root = Path(tempfile.mkdtemp(prefix="mascot-fuzz-json-"))
        atexit.register(shutil.rmtree, root, True)
        _DIR = root / "model"
        _DIR.mkdir()
        np.save(_DIR / "P.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
        np.save(_DIR / "Q.npy", np.arange(4, dtype=np.float32).reshape(2, 2))
    return _DIR


def TestOneInput(data: bytes) -> None:  # noqa: N802 (libFuzzer/atheris name)
    import mascot

    d = _model_dir()
    (d / "model.json").write_bytes(data)
    try:
        m = mascot.MF.load(d)
    except (ValueError, OSError) as e:
        msg = str(e)
        if not msg or "\n" in msg or "model" not in msg:
            raise AssertionError(f"unclear error message: {msg!r}") from e
        return
    assert m.P.shape == (3, 2) and m.Q.shape == (2, 2) and m.k == 2, "loaded model does not match P.npy/Q.npy"


# ----------------------------------------------------------------------------- mutations
_JSON_VALUES = [None, True, False, 0, -1, 2, 3, 2 ** 31, 2 ** 64, 1.5, float("1e308"), "", "x", "fp32",
                "mascot", "cuda", [], [1], {}, {"a": 1}, "\u00e9\u0000"]


_DEEP = "__deep_nesting__"  # replaced by 5000 nested arrays after json.dumps


def _random_value(rng: random.Random, depth: int = 0):
    r = rng.random()
    if r < 0.05 and depth == 0:
        return _DEEP if rng.random() < 0.5 else {"k": [[[]]]}
    if r < 0.15 and depth < 3:
        return {rng.choice(["k", "lr", "method", "epochs", "x"]): _random_value(rng, depth + 1)}
    return rng.choice(_JSON_VALUES)


def _mutate_json(seed: bytes, rng: random.Random) -> bytes:
    try:
        meta = json.loads(seed)
    except (ValueError, RecursionError):
        return seed
    if not isinstance(meta, dict):
        return seed
    for _ in range(rng.randint(1, 3)):
        target = meta
        if isinstance(meta.get("params"), dict) and rng.random() < 0.6:
            target = meta["params"]
        keys = list(target) + ["extra"]
        key = rng.choice(keys)
        if rng.random() < 0.15:
            target.pop(key, None)
        else:
            target[key] = _random_value(rng)
    try:
        return json.dumps(meta).replace(f'"{_DEEP}"', "[" * 5000 + "]" * 5000).encode()
    except (ValueError, RecursionError):
        return seed


def _mutate_bytes(b: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    b = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        n = len(b)
        if op == 0 and n:
            b[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1:
            at = rng.randrange(n + 1)
            b[at:at] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"\\", b"\xff", b"\x00", b"-1", b"1e999",
                                   b"NaN", b"Infinity", b"true", b"null"])
        elif op == 2 and n:
            at = rng.randrange(n)
            del b[at:at + rng.randint(1, 16)]
        elif op == 3:
            del b[rng.randrange(n + 1):]
        elif op == 4:
            o = rng.choice(pool)
            b = b[:rng.randrange(n + 1)] + o[rng.randrange(len(o) + 1):]
        elif n:
            b[rng.randrange(n)] = rng.randrange(256)
    return bytes(b)


def replay(corpus: list[bytes], seconds: float = 0, mutations: int = -1, seed: int = 1) -> int:
    """Runs the corpus and then seeded mutations (for `seconds`, or `mutations` of them)."""
    for b in corpus:
        TestOneInput(b)
    rng = random.Random(seed)
    t0, n = time.monotonic(), 0
    while (mutations < 0 or n < mutations) and (seconds <= 0 or time.monotonic() - t0 < seconds):
        src = rng.choice(corpus)
        TestOneInput(_mutate_json(src, rng) if rng.random() < 0.5 else _mutate_bytes(src, corpus, rng))
        n += 1
    return n


def load_corpus(d: str | Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(Path(d).iterdir()) if p.is_file() and not p.name.startswith(".")]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--replay":
        secs = float(sys.argv[2])
        seed = 1
        rest = sys.argv[3:]
        if rest[:1] == ["--seed"]:
            seed, rest = int(rest[1]), rest[2:]
        t = time.monotonic()
        corpus = [b for d in rest for b in load_corpus(d)]
        n = replay(corpus, seconds=secs, seed=seed)
        print(f"replay: {len(corpus)} corpus inputs + {n} mutations (seed {seed}) in "
              f"{time.monotonic() - t:.2f} s, no findings")
    else:
        import atheris  # type: ignore[import-not-found]

        with atheris.instrument_imports():
            import mascot.model  # noqa: F401
        atheris.Setup(sys.argv, TestOneInput)
        atheris.Fuzz()
