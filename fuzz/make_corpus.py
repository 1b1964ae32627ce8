"""Regenerates the seed corpus fuzz/corpus/<target>/ (valid and near-valid inputs).

Run from the repository root: ``python fuzz/make_corpus.py``.  The files are committed; this
script only documents how they were made.  File names carry no .mrat/.npy suffix on purpose
(.gitignore excludes *.mrat data files).
"""
import io
import struct
from pathlib import Path

import numpy as np

# model_json/ (the Python model.json layer) was written by hand from a saved model.
ROOT = Path(__file__).resolve().parent / "corpus"
SEP = b"\n--Q.npy--\n"  # fuzz/targets/model_dir.cc splits P.npy and Q.npy at this


def mrat(nu, ni, users, items, ratings, magic=b"MASCOTR\0", version=1, flags=0, nnz=None):
    n = len(users) if nnz is None else nnz
    return (magic + struct.pack("<IIQQQ", version, flags, nu, ni, n) + struct.pack(f"<{len(users)}i", *users)
            + struct.pack(f"<{len(items)}i", *items) + struct.pack(f"<{len(ratings)}f", *ratings))


def npy(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def write(target, files):
    d = ROOT / target
    d.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (d / name).write_bytes(blob)


write("mrat", {
    "valid_3": mrat(3, 2, [0, 2, 1], [1, 0, 1], [4.0, 3.0, 0.5]),
    "valid_empty": mrat(0, 0, [], [], []),
    "valid_big_ids": mrat(2 ** 31, 2 ** 31, [2 ** 31 - 1], [0], [1.0]),
    "bad_version": mrat(3, 2, [0], [1], [4.0], version=2),
    "bad_flags": mrat(3, 2, [0], [1], [4.0], flags=1),
    "bad_user": mrat(3, 2, [0, 5], [1, 0], [4.0, 3.0]),
    "bad_negative_item": mrat(3, 2, [0], [-1], [4.0]),
    "bad_nan": mrat(3, 2, [0], [1], [float("nan")]),
    "bad_nnz": mrat(3, 2, [0], [1], [4.0], nnz=2 ** 62),
    "truncated": mrat(3, 2, [0, 2], [1, 0], [4.0, 3.0])[:-3],
    "header_only": mrat(3, 2, [], [], [])[:40],
})

write("text", {
    "valid": b"0 1 4.5\n2 0 3\n1 1 -2.25e-1\n",
    "valid_comments_crlf_tabs": b"# header\r\n0 1 4.5\r\n\n\t2\t0\t3  \n# end",
    "valid_bom_no_newline": b"\xef\xbb\xbf0 0 1\n3 4 5",
    "valid_max_id": b"2147483647 0 1e-3\n",
    "bad_fields": b"0 1 3\n1 2\n",
    "bad_extra_field": b"0 1 3 7\n",
    "bad_rating": b"0 1 abc\n",
    "bad_nan": b"0 1 nan\n",
    "bad_inf": b"0 1 -inf\n",
    "bad_float_range": b"0 1 1e39\n",
    "bad_negative_id": b"-1 1 3\n",
    "bad_id_range": b"3000000000 1 3\n",
    "bad_binary": b"0 1 3\n\xff\xfe\x00 1 2\n",
    "empty": b"",
})

P = np.arange(6, dtype=np.float32).reshape(3, 2)
Q = np.arange(4, dtype=np.float32).reshape(2, 2) / 3
write("model_dir", {
    "valid": npy(P) + SEP + npy(Q),
    "valid_same_file": npy(P),
    "valid_empty_rows": npy(np.zeros((0, 4), np.float32)) + SEP + npy(np.ones((1, 4), np.float32)),
    "bad_k_mismatch": npy(P) + SEP + npy(np.zeros((2, 3), np.float32)),
    "bad_dtype_f8": npy(P.astype(np.float64)) + SEP + npy(Q),
    "bad_fortran": npy(np.asfortranarray(np.ones((2, 3), np.float32))) + SEP + npy(Q),
    "bad_1d": npy(np.ones(4, np.float32)) + SEP + npy(Q),
    "bad_3d": npy(np.ones((1, 2, 2), np.float32)) + SEP + npy(Q),
    "bad_truncated": npy(P)[:-5] + SEP + npy(Q),
    "bad_magic": b"NOTNUMPY" + npy(P)[8:] + SEP + npy(Q),
    "v2_header": npy(P)[:6] + b"\x02\x00" + struct.pack("<I", 118) + npy(P)[10:] + SEP + npy(Q),
})

# checkpoint/: tiny real checkpoints (needs mascot installed: skipped otherwise), packed as
# fuzz/targets/checkpoint.cc reads them: manifest, then "\n==> FILE <==\n" + bytes per state
# file.  Written on the tiny data of that target (mirrored here) after 2 of 3 epochs, so the
# target's resume runs one epoch.  A leading "!" turns off the target's checksum re-stamping.
CK_SEP, CK_END = b"\n==> ", b" <==\n"


def tiny_data():
    i = np.arange(60)
    tr = (i % 12, (i * 7 + i // 12) % 9, 1.0 + 0.5 * ((i * 37) % 9))
    j = np.arange(15)
    te = ((j * 5) % 12, (j * 4 + 1) % 9, 3.0 + 0.5 * (j % 3))
    return [(u.astype(np.int32), it.astype(np.int32), r.astype(np.float32)) for u, it, r in (tr, te)]


def tiny_checkpoint(tmp, k=4, **params):
    import json
    import tempfile

    from mascot import MF, _core
    (tu, ti, tr), (eu, ei, er) = tiny_data()
    m = MF(k=k, epochs=3, deterministic=True, **{"groups": 2, **params})
    d = Path(tempfile.mkdtemp(dir=tmp))
    _core.train_checkpointed(m._config(), m._context(), tu, ti, tr, 12, 9, eu, ei, er, "tiny",
                             lambda rec: rec["epoch"] < 1, str(d / "ck"), 1)
    man = (d / "ck" / "checkpoint.json").read_bytes()
    files = {k[5:]: v for k, v in json.loads(man).items() if k.startswith("file.")}
    parts = {name: (d / "ck" / f).read_bytes() for name, f in files.items()}
    pack = man + b"".join(CK_SEP + files[n].encode() + CK_END + parts[n] for n in sorted(files))
    return pack, files, parts, man


try:
    import tempfile

    import mascot  # noqa: F401
except ImportError:
    print("make_corpus.py: mascot not importable; checkpoint/ seeds not regenerated")
else:
    with tempfile.TemporaryDirectory() as tmp:
        seeds = {}
        for name, params in {
            "valid_fp32": dict(method="fp32"),
            "valid_mascot_switches": dict(method="mascot", groups=4, warmup=0, period=1, threshold=1.1),
            "valid_mpt_dynamic": dict(method="mpt", method_params={"loss_scale": "dynamic", "loss_scale_window": 20}),
            "valid_muppet": dict(method="muppet", method_params={"muppet_resolution": 1, "muppet_patience": 1}),
            "valid_afp": dict(method="afp"),
            "valid_mascot_stochastic_chunk": dict(method="mascot", rounding="stochastic", order="chunk"),
        }.items():
            seeds[name] = tiny_checkpoint(tmp, **params)[0]
        pack, files, parts, man = tiny_checkpoint(tmp, method="fp32")
        p32 = files["P32"].encode()
        seeds["bad_truncated_P32"] = pack.replace(CK_END + parts["P32"], CK_END + parts["P32"][:-7])
        seeds["bad_raw_flipped_byte"] = b"!" + pack.replace(parts["P32"], parts["P32"][:-1] + b"\x01")
        seeds["bad_raw_missing_file"] = b"!" + pack.replace(CK_SEP + p32 + CK_END + parts["P32"], b"")
        seeds["bad_manifest_truncated"] = man[: len(man) // 2]
        seeds["bad_run_state_cut"] = pack.replace(parts["run_state"], parts["run_state"][:40])
        _, _, parts8, _ = tiny_checkpoint(tmp, method="fp32", k=8)
        seeds["bad_other_k_P32"] = pack.replace(parts["P32"], parts8["P32"])  # re-stamped: passes the checksum
        # the target's findings (docs/hardening.md), re-made on this format's seeds: a manifest key
        # with non-ASCII bytes; an AFP state whose first has_avg bool byte is 5; a backend state
        # saying 1 epoch done under a run and driver state with 2
        afp, afp_files, afp_parts, _ = tiny_checkpoint(tmp, method="afp")
        seeds["bad_fuzz_non_ascii_key"] = afp.replace(b'"file.run_state"', b'"file.ru\xef\xbb\xbfn_state"')
        cpu = afp_parts["cpu_state"]
        # cpu_state: "cpu", storage, k, users, items, threads, epochs, then the method's blob
        # ("afp", workers, per worker and tensor AfpTensorState {bits, pos, mov_avg, has_avg, ...})
        has_avg = cpu.index(struct.pack("<Q", 3) + b"afp") + 11 + 8 + 16
        seeds["bad_fuzz_afp_bool_byte"] = afp.replace(cpu, cpu[:has_avg] + b"\x05" + cpu[has_avg + 1:])
        epochs = 11 + 4 + 4 + 8 + 8 + 4
        assert cpu[epochs:epochs + 4] == struct.pack("<i", 2)
        seeds["bad_fuzz_epoch_count"] = afp.replace(cpu, cpu[:epochs] + struct.pack("<i", 1) + cpu[epochs + 4:])
        write("checkpoint", seeds)
