"""Static SASS instruction counts of the CUDA SGD kernels: a no-device proxy of their issue cost.

    python benchmarks/sass_count.py [--src DIR] [--arch 90] [--k 64,128] [--kernels REGEX] [--md FILE]

Compiles cuda/sgd_kernels.cu and cuda/competing_kernels.cu of the tree at DIR (default: this
repository) to sm_ARCH cubins with the project's CUDA flags (-O3 -fmad=false -lineinfo), then
reads the disassembly (nvdisasm) and the resource usage (cuobjdump -res-usage) of every SGD
kernel instantiated for k = 32 E.  For each kernel it prints

  regs       registers per thread; blocks/SM: resident 256-thread blocks by registers
             (sm_90: 64 K registers, allocated per warp in units of 256; at most 8 blocks of
             256 threads = 64 warps, "full occupancy")
  update     warp instructions on one pass of the per-rating loop (phase 2: one rating
             updated by the whole warp), min-max over the paths through it.  Straight-line
             kernels have min == max; a kernel with per-rating branches (mixed precision,
             sampled ratings, MPT's skipped updates) has a range
  batch      warp instructions of one pass of the batch loop outside the per-rating loop
             (phase 1: 32 records fetched, groups looked up ...), with an inner loop (the
             Feistel cycle walk) counted once: the walk repeats ~2-9 times per batch depending
             on nnz, so this part is a lower bound
  per upd    update + batch / 32: warp instructions per rating update

It is a static count from the compiled code, not a measurement on a GPU: no timing, no stall,
no cache behaviour; a branch's both sides are counted as separate paths, never weighted by how
often they run.  Loops are found from the branch structure (a branch to an earlier address
closes a loop); the per-rating loop is the innermost loop that broadcasts the rating
(SHFL.IDX) and writes a row (STG/RED/ATOM); the warp-divergence slow paths of the shuffles
(BRA.DIV) are never taken by converged warps and are left out.

Tools: nvcc on PATH; nvdisasm and cuobjdump on PATH, or from the PyPI wheels
nvidia-cuda-nvdisasm and nvidia-cuda-cuobjdump (pip install them into the environment).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["cuda/sgd_kernels.cu", "cuda/competing_kernels.cu"]
THREADS = 256


def tool(name: str) -> str:
    """Path of a CUDA binary tool: PATH, CUDA's bin folder, or the nvidia-cuda-* wheels."""
    p = shutil.which(name)
    if p:
        return p
    for d in ("/usr/local/cuda/bin", os.path.dirname(os.path.realpath(shutil.which("nvcc") or "/nonexistent"))):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    try:
        import nvidia  # the nvidia-cuda-* wheels install into the namespace package `nvidia`
        for base in nvidia.__path__:
            for sub in sorted(os.listdir(base)):
                cand = os.path.join(base, sub, "bin", name)
                if os.path.exists(cand):
                    return cand
    except ImportError:
        pass
    sys.exit(f"sass_count: error: {name} not found (pip install nvidia-cuda-nvdisasm nvidia-cuda-cuobjdump)")


def compile_cubin(src_root: str, rel: str, arch: str, out: str, defines: list[str]) -> None:
    cmd = [shutil.which("nvcc") or "nvcc", "-cubin", f"-arch=sm_{arch}", "-O3", "-std=c++17", "-fmad=false",
           "-lineinfo",
           "-I", os.path.join(src_root, "cpp/include"), "-I", os.path.join(src_root, "cuda"), "-o", out,
           os.path.join(src_root, rel)] + [f"-D{d}" for d in defines]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"sass_count: error: nvcc failed on {rel}:\n{r.stderr[-3000:]}")


def newest_source(src_root: str) -> float:
    """Modification time of the newest file the kernels are built from."""
    newest = 0.0
    for d in ("cuda", "cpp/include/mascot"):
        for dirpath, _, files in os.walk(os.path.join(src_root, d)):
            for f in files:
                newest = max(newest, os.path.getmtime(os.path.join(dirpath, f)))
    return newest


def demangle(names: list[str]) -> dict[str, str]:
    filt = shutil.which("c++filt")
    if not filt:
        return {n: n for n in names}
    r = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, r.stdout.splitlines()))


def resource_usage(cubin: str) -> dict[str, dict]:
    r = subprocess.run([tool("cuobjdump"), "-res-usage", cubin], capture_output=True, text=True, check=True)
    out, name = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            name = m.group(1)
            continue
        m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", line)
        if m and name:
            out[name] = dict(regs=int(m.group(1)), stack=int(m.group(2)), shared=int(m.group(3)), local=int(m.group(4)))
            name = None
    return out


INSN = re.compile(r"^\s*/\*([0-9a-f]+)\*/\s+(.*?)\s*;")
LABEL = re.compile(r"^(\.L_x_\d+):")
TARGET = re.compile(r"`\((\.L_x_\d+)\)")


def functions(cubin: str) -> dict[str, list]:
    """name -> list of ('label', name) / ('insn', text) in address order."""
    r = subprocess.run([tool("nvdisasm"), "-c", cubin], capture_output=True, text=True, check=True)
    funcs, cur = {}, None
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*\.text\.(\S+):$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        if cur is None:
            continue
        m = LABEL.match(line.strip())
        if m:
            cur.append(("label", m.group(1)))
            continue
        m = INSN.match(line)
        if m:
            cur.append(("insn", m.group(2)))
    return funcs


class Cfg:
    """Basic blocks of one function, their edges and instruction counts."""

    def __init__(self, items: list):
        self.blocks: list[list[str]] = []
        self.label_block: dict[str, int] = {}
        cur: list[str] = []
        pending: list[str] = []
        for kind, v in items:
            if kind == "label":
                if cur:
                    self.blocks.append(cur)
                    cur = []
                pending.append(v)
                continue
            if not cur:
                for lab in pending:
                    self.label_block[lab] = len(self.blocks)
                pending = []
            cur.append(v)
            op = self.opcode(v)
            if op.startswith(("BRA", "EXIT", "RET", "BRX", "JMX", "JMP")):
                self.blocks.append(cur)
                cur = []
        if cur:
            self.blocks.append(cur)
        for lab in pending:
            self.label_block[lab] = len(self.blocks)
        n = len(self.blocks)
        self.succ: list[list[int]] = [[] for _ in range(n)]
        for b, insns in enumerate(self.blocks):
            last = insns[-1]
            op = self.opcode(last)
            pred = last.lstrip().startswith("@")
            if op.startswith("BRA"):
                t = TARGET.search(last)
                if t and not op.startswith("BRA.DIV") and t.group(1) in self.label_block:
                    self.succ[b].append(self.label_block[t.group(1)])
                if (pred or op.startswith("BRA.DIV")) and b + 1 < n:  # BRA.DIV: taken by diverged warps only
                    self.succ[b].append(b + 1)
            elif op.startswith(("EXIT", "RET", "BRX", "JMX", "JMP")):
                if pred and b + 1 < n:
                    self.succ[b].append(b + 1)
            elif b + 1 < n:
                self.succ[b].append(b + 1)
        self.size = [sum(1 for i in insns if self.opcode(i) != "NOP") for insns in self.blocks]
        # blocks reached only through BRA.DIV (the shuffles' divergent-warp slow paths, placed
        # after the kernel and branching back into it) are dropped: no edge leads to them
        self.live, stack = {0}, [0]
        while stack:
            for s in self.succ[stack.pop()]:
                if s not in self.live:
                    self.live.add(s)
                    stack.append(s)
        self.succ = [ss if b in self.live else [] for b, ss in enumerate(self.succ)]

    @staticmethod
    def opcode(insn: str) -> str:
        s = insn.strip()
        if s.startswith("@"):
            s = s.split(None, 1)[1] if " " in s else ""
        return s.split(None, 1)[0] if s else ""

    def loops(self) -> list[tuple[int, set[int]]]:
        """(header, body) of every natural loop: a branch to a block at or before its own."""
        pred: list[list[int]] = [[] for _ in self.blocks]
        for b, ss in enumerate(self.succ):
            for s in ss:
                pred[s].append(b)
        out = []
        for b, ss in enumerate(self.succ):
            for h in ss:
                if h <= b:
                    body, stack = {h, b}, [b]
                    while stack:
                        x = stack.pop()
                        for p in pred[x]:
                            if p not in body and p >= h:
                                body.add(p)
                                stack.append(p)
                    out.append((h, body))
        merged: dict[int, set[int]] = {}
        for h, body in out:  # one loop per header (several back edges: the union)
            merged.setdefault(h, set()).update(body)
        return sorted(merged.items(), key=lambda x: len(x[1]))

    def has(self, body: set[int], *ops: str) -> bool:
        return any(self.opcode(i).startswith(ops) for b in body for i in self.blocks[b])

    def paths(self, header: int, body: set[int], weight: dict[int, int]) -> tuple[int, int]:
        """min and max instructions from the header back to it through the loop, blocks in
        address order (acyclic once the back edges are dropped); weight overrides a block's
        count (0 for blocks of an inner loop counted elsewhere)."""
        inf = float("inf")
        lo = {header: weight.get(header, self.size[header])}
        hi = dict(lo)
        best_lo, best_hi = inf, -inf
        for b in sorted(body):
            if b not in lo:
                continue
            for s in self.succ[b]:
                if s == header:
                    best_lo, best_hi = min(best_lo, lo[b]), max(best_hi, hi[b])
                elif s in body and s > b:
                    w = weight.get(s, self.size[s])
                    lo[s] = min(lo.get(s, inf), lo[b] + w)
                    hi[s] = max(hi.get(s, -inf), hi[b] + w)
        return (int(best_lo), int(best_hi)) if best_hi >= 0 else (0, 0)


def analyse(items: list) -> dict | None:
    g = Cfg(items)
    loops = g.loops()
    upd = next(((h, b) for h, b in loops if g.has(b, "SHFL.IDX") and g.has(b, "STG", "RED", "ATOM")), None)
    if upd is None:
        return None
    h, body = upd
    # a loop inside the per-rating loop (AFP's recent rows, ...) counts one pass: paths() follows
    # forward edges only
    u_lo, u_hi = g.paths(h, body, {})
    outer = next(((oh, ob) for oh, ob in loops if body < ob), None)
    b_lo = b_hi = 0
    if outer:
        oh, ob = outer
        wb = {x: 0 for x in body}
        b_lo, b_hi = g.paths(oh, ob, wb)
        # the per-rating loop was entered and left once: its blocks weigh 0, the path went through
    return dict(update=(u_lo, u_hi), batch=(b_lo, b_hi), total=sum(len(x) for x in g.blocks))


def blocks_per_sm(regs: int, arch: str) -> int:
    if regs <= 0:
        return 0
    per_warp = ((regs * 32 + 255) // 256) * 256
    warps = 65536 // per_warp
    return min(warps // (THREADS // 32), 64 // (THREADS // 32), 32)


def short_name(demangled: str) -> str:
    """`void mascot::cuda::(anonymous namespace)::sgd_kernel<4>(mascot::cuda::SgdArgs)` -> `sgd_kernel<4>`."""
    s = re.sub(r"^void ", "", demangled).replace("(anonymous namespace)::", "").replace("mascot::cuda::", "")
    return re.sub(r"\([^()]*\)$", "", s)


STORES = {"0": "fp32 rows", "1": "fp16 rows", "2": "per-group rows"}


def describe(name: str):
    """(k, variant text) of an SGD kernel's short name, or None for other kernels.  Understands
    the specialised kernels (sgd_kernel<RowLayout<E, W, mask>, (Store)S, merge, sr, measure>, ...)
    and the earlier one-per-E kernels (sgd_kernel<E>: every mode behind run-time branches)."""
    m = re.match(r"(\w+)<(.*)>$", name)
    if not m or m.group(1) not in ("sgd_kernel", "sgd_half_kernel", "mpt_kernel", "muppet_kernel", "afp_kernel"):
        return None
    kern, args = m.group(1), m.group(2)
    lay = re.match(r"RowLayout<(\d+), (\d+), (true|false)>(?:, )?(.*)$", args)
    if lay:
        e, mask, rest = int(lay.group(1)), lay.group(3) == "true", lay.group(4)
        k = f"<={32 * e} (masked)" if mask else str(32 * e)
        flags = [x.strip() for x in rest.split(",")] if rest else []
    else:
        e = int(re.match(r"(\d+)", args).group(1))
        k, flags = str(32 * e), [x.strip() for x in args.split(",")[1:]]
    if kern == "sgd_kernel" and len(flags) == 4:
        st = STORES.get(re.sub(r"\D", "", flags[0]), flags[0])
        what = f"{st}, {'add' if flags[1] == 'true' else 'store'}, {'stochastic' if flags[2] == 'true' else 'nearest'}"
        what += ", sampled" if flags[3] == "true" else ""
    elif kern == "sgd_kernel":
        what = "every storage and mode (run-time branches)"
    elif kern == "sgd_half_kernel":
        what = "fp16 arithmetic" + (f", {'add' if flags[0] == 'true' else 'store'}" if flags else ", add or store")
    elif kern == "mpt_kernel":
        what = "mpt, " + ("stochastic" if flags and flags[0] == "true" else "nearest")
    else:
        what = kern.replace("_kernel", "")
    return k, what


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="sass_count", description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=ROOT, help="source tree (default: this repository)")
    ap.add_argument("--arch", default="90")
    ap.add_argument("--k", default="64,128", help="k values to list (default 64,128)")
    ap.add_argument("--all-k", action="store_true", help="list every row layout, masked ones included")
    ap.add_argument("--kernels", default="", help="regex on the demangled kernel name")
    ap.add_argument("--define", action="append", default=[], help="extra -D for nvcc (repeatable)")
    ap.add_argument("--md", default="", help="also write the table as Markdown to this file")
    ap.add_argument("--keep", default="",
                    help="keep the cubins in this folder (and reuse them while no source is newer)")
    a = ap.parse_args(argv)
    ks = [int(x) for x in a.k.split(",") if x]
    work = a.keep or tempfile.mkdtemp(prefix="sass-")
    os.makedirs(work, exist_ok=True)
    rows = []
    for rel in SOURCES:
        cubin = os.path.join(work, os.path.basename(rel) + f".sm{a.arch}.cubin")
        if a.keep and os.path.exists(cubin) and os.path.getmtime(cubin) >= newest_source(a.src):
            print(f"== {cubin}: kept from an earlier run (no source is newer)", file=sys.stderr, flush=True)
        else:
            print(f"== nvcc {rel} (sm_{a.arch})", file=sys.stderr, flush=True)
            compile_cubin(a.src, rel, a.arch, cubin, a.define)
        res = resource_usage(cubin)
        funcs = functions(cubin)
        names = demangle(list(funcs))
        for mangled, items in funcs.items():
            dn = short_name(names.get(mangled, mangled))
            d = describe(dn)
            if d is None:
                continue
            k, what = d
            if not (k in map(str, ks) or a.all_k):
                continue
            if a.kernels and not re.search(a.kernels, dn):
                continue
            an = analyse(items)
            if an is None:
                continue
            r = res.get(mangled, {})
            rows.append((k, what, dn, r.get("regs", 0), r.get("local", 0), blocks_per_sm(r.get("regs", 0), a.arch), an))
    rows.sort(key=lambda x: (len(x[0]), x[0], x[2]))
    lines = ["| k | kernel | regs | spill B | blocks/SM | update | batch | per update |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]

    def rng(x):
        return f"{x[0]}" if x[0] == x[1] else f"{x[0]}-{x[1]}"

    for k, what, _name, regs, local, bps, an in rows:
        tot = (an["update"][0] + an["batch"][0] / 32, an["update"][1] + an["batch"][1] / 32)
        tot_s = f"{tot[0]:.0f}" if round(tot[0]) == round(tot[1]) else f"{tot[0]:.0f}-{tot[1]:.0f}"
        lines.append(f"| {k} | {what} | {regs} | {local} | {bps} | {rng(an['update'])} | {rng(an['batch'])} "
                     f"| {tot_s} |")
    text = "\n".join(lines)
    print(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text + "\n")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
