"""Regenerates python/mascot/_core.pyi from the installed extension.

    python scripts/make_stub.py

nanobind's stubgen writes the stub of mascot._core, and one of its submodule mascot._core._testing
(the test hooks); a stub file cannot hold a submodule, so the hooks are appended as the
static methods of a class `_testing`, which type checkers read the same way
(`_core._testing.reorder(...)`).
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]


def stub(module: str, out: pathlib.Path) -> str:
    subprocess.run([sys.executable, "-m", "nanobind.stubgen", "-q", "-m", module, "-o", str(out)], check=True)
    return out.read_text()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        core = stub("mascot._core", pathlib.Path(tmp) / "core.pyi")
        testing = stub("mascot._core._testing", pathlib.Path(tmp) / "testing.pyi")
    # module attributes by type only (their values are the build's: HAS_CUDA), and the version
    core = re.sub(r"^([A-Za-z_]\w*): (\w+) = .*$", r"\1: \2", core, flags=re.M)
    if "__version__: str" not in core:
        core = core.replace("\nHAS_CUDA: bool", "\n__version__: str\n\nHAS_CUDA: bool", 1)
    doc, body = re.match(r'\s*"""(.*?)"""\s*(.*)', testing, re.S).groups()
    body = re.sub(r"^(from |import ).*\n", "", body, flags=re.M).replace("mascot._core.", "")
    lines = ["", "", "class _testing:", f'    """{doc.strip()}"""', ""]
    for line in body.strip("\n").splitlines():
        if line.startswith("def "):
            lines += ["    @staticmethod"]
        lines.append(("    " + line) if line.strip() else "")
    (ROOT / "python" / "mascot" / "_core.pyi").write_text(core.rstrip("\n") + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
