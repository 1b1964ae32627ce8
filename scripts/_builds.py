"""Builds of mascot_train from git refs, shared by scripts/bit_identity.py and scripts/paired_bench.py.

`build(ref)` returns the path of a Release, CPU-only (MASCOT_CUDA=OFF) mascot_train built from
`ref` (a git ref, from `git archive` into build-bitid/<commit>/, cached) or from the working tree
("worktree": build-bitid/worktree/, rebuilt incrementally every call).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, **kw):
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)


def build(ref: str) -> str:
    """mascot_train of `ref` ("worktree": the working tree); returns the executable's path."""
    if ref == "worktree":
        src, out = ROOT, os.path.join(ROOT, "build-bitid", "worktree")
    else:
        r = run(["git", "-C", ROOT, "rev-parse", "--verify", ref + "^{commit}"])
        if r.returncode != 0:
            sys.exit(f"bit_identity: error: unknown git ref '{ref}'")
        sha = r.stdout.strip()
        out = os.path.join(ROOT, "build-bitid", sha[:12])
        exe = os.path.join(out, "build", "mascot_train")
        if os.path.exists(exe):
            return exe
        src = os.path.join(out, "src")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(src)
        arch = subprocess.run(["git", "-C", ROOT, "archive", sha], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", src], input=arch, check=True)
    bdir = os.path.join(out, "build")
    print(f"== building mascot_train of {ref} in {bdir}", flush=True)
    for cmd in (["cmake", "-S", src, "-B", bdir, "-DMASCOT_CUDA=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", bdir, "--target", "mascot_train", "-j", str(os.cpu_count() or 2)]):
        r = run(cmd)
        if r.returncode != 0:
            print(r.stdout[-4000:], r.stderr[-4000:], file=sys.stderr)
            sys.exit(f"bit_identity: error: building {ref} failed")
    return os.path.join(bdir, "mascot_train")


