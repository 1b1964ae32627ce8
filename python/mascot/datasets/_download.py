"""Getting and checking upstream files: URL checks, HTTP downloads into a verified cache,
checksums, and ``pip download`` of a single wheel (the ml100k fallback).

Verified downloads are cached in ``$MASCOT_DATA/.downloads`` (:func:`fetch_verified`: a cached
copy is re-verified, a bad one fetched again).  A download that stalls (less than
``DOWNLOAD_MIN_BYTES`` in ``DOWNLOAD_WINDOW`` seconds) or gets a broken HTTP response fails with
a :class:`DownloadError`; pip gets ``PIP_TIMEOUT`` seconds and never prompts.  The constants
are module attributes so that tests can shrink them (set them on this module).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .. import _files
from .._progress import ByteProgress
from ._common import DatasetError, DownloadError

# The socket timeout bounds each read; a transfer slower than DOWNLOAD_MIN_BYTES per
# DOWNLOAD_WINDOW seconds (a server dripping bytes) is aborted.  pip gets PIP_TIMEOUT seconds.
DOWNLOAD_TIMEOUT = 30.0
DOWNLOAD_WINDOW = 60.0
DOWNLOAD_MIN_BYTES = 16 << 10
PIP_TIMEOUT = 600.0


def file_digest(path: Path, algo: str) -> str:
    """The hex digest of ``path``'s bytes by hashlib algorithm ``algo``."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def verify(path: Path, key: str, pins: dict[str, tuple[str, str]]) -> str:
    """Checks ``path`` against ``pins[key]``; returns its SHA-256 (recorded in meta.json)."""
    sha = file_digest(path, "sha256")
    if key in pins:
        algo, want = pins[key]
        got = sha if algo == "sha256" else file_digest(path, algo)
        if got != want:
            raise DatasetError(f"{key}: checksum mismatch ({algo} {got}, expected {want}); "
                               "the file is corrupt or not the expected release")
    return sha


def check_url(url: str, what: str) -> str:
    """``url`` when it is a usable http(s), ftp or file URL, else a DatasetError naming ``what``
    (a mirror URL is checked once, up front, not deep inside a download)."""
    why = None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as e:
        parts, why = None, str(e)
    if why is None:
        if not url:
            why = "empty"
        elif any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            why = "contains whitespace or control characters"
        elif parts.scheme not in ("http", "https", "ftp", "file"):
            why = "expected an http://, https://, ftp:// or file:// URL"
        elif parts.scheme != "file" and not parts.hostname:
            why = "no host name"
        else:
            try:
                _ = parts.port  # a port that is no number: ValueError
            except ValueError as e:
                why = str(e)
    if why:
        raise DatasetError(f"{what}: invalid URL {url!r} ({why})")
    return url


def download(url: str, dest: Path, quiet: bool, timeout: float | None = None) -> None:
    """Fetches ``url`` into ``dest``, a new file nobody else sees yet (the staged temp of an
    output: the caller publishes it).  Each read waits at most ``timeout`` (DOWNLOAD_TIMEOUT)
    seconds; fewer than DOWNLOAD_MIN_BYTES bytes in DOWNLOAD_WINDOW seconds abort the transfer."""
    part = dest
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT if timeout is None else timeout) as resp:
            total = resp.headers.get("Content-Length")
            prog = ByteProgress(f"downloading {url}", int(total) if total else None, quiet)
            read = getattr(resp, "read1", resp.read)  # read1: returns what has arrived (progress checks)
            window, t_win = 0, time.monotonic()
            try:
                with open(part, "wb") as f:
                    for blk in iter(lambda: read(1 << 16), b""):
                        f.write(blk)
                        prog.add(len(blk))
                        window += len(blk)
                        now = time.monotonic()
                        if now - t_win >= DOWNLOAD_WINDOW:
                            if window < DOWNLOAD_MIN_BYTES:
                                raise DownloadError(f"cannot download {url}: too slow (less than "
                                                    f"{DOWNLOAD_MIN_BYTES:,} bytes in {DOWNLOAD_WINDOW:g} s)")
                            window, t_win = 0, now
            finally:
                prog.close()
            if total and part.stat().st_size != int(total):
                raise DownloadError(f"{url}: download truncated ({part.stat().st_size} of {total} bytes)")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        if isinstance(e, DownloadError):
            raise
        why = getattr(e, "reason", None) or str(e) or type(e).__name__
        if isinstance(e, http.client.HTTPException):
            name, text = type(e).__name__, str(e)
            why = f"bad HTTP response ({text if text.startswith(name) else name + (': ' + text if text else '')})"
        why = " ".join(str(why).split())  # one line, whatever the server sent
        raise DownloadError(f"cannot download {url}: {why[:300]}") from None


def cache_dir(root: Path) -> Path:
    """``root/.downloads``, created when missing."""
    d = root / ".downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def fetch_verified(name: str, url: str, root: Path, pins: dict, quiet: bool) -> tuple[Path, str]:
    """A verified copy of ``name`` in the download cache (re-verified when already there)."""
    cached = cache_dir(root) / name
    if cached.exists():
        try:
            return cached, verify(cached, name, pins)
        except DatasetError:
            cached.unlink()  # a stale or corrupt copy: fetch again
    with _files.staged_file(cached) as got:  # published only once verified
        download(url, got, quiet)
        sha = verify(got, name, pins)
    return cached, sha


def pip_download(requirement: str, wheel: str, dest: Path, index_url: str | None, quiet: bool) -> Path:
    """``pip download REQUIREMENT`` alone (no dependencies, wheel only) into ``dest``; returns
    ``dest/wheel``.  ``index_url`` (else ``$MASCOT_PYPI_INDEX_URL``) replaces PyPI."""
    # --no-input and no stdin: pip never waits at a (hidden) credentials prompt; bounded retries
    cmd = [sys.executable, "-m", "pip", "download", requirement, "--no-deps",
           "--only-binary=:all:", "--no-cache-dir", "--no-input", "--timeout", "30", "--retries", "2",
           "-d", str(dest)]
    env = dict(os.environ)
    index_url = index_url or os.environ.get("MASCOT_PYPI_INDEX_URL")
    if index_url:
        # an explicit index is the only source: pip's config files and PIP_* settings are ignored
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        cmd += ["--index-url", index_url, "--disable-pip-version-check"]
    if not quiet:
        print(f"fetching {wheel} from {index_url or 'PyPI'} with pip", file=sys.stderr)
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                             env=env, timeout=PIP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DownloadError(f"pip download {requirement} did not finish in {PIP_TIMEOUT:g} s "
                            f"(index {index_url or 'PyPI'} unreachable or too slow)") from None
    except OSError as e:
        raise DownloadError(f"pip download {requirement} could not run: {e}") from None
    whl = dest / wheel
    if res.returncode != 0 or not whl.exists():
        last = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["no output"])[-1]
        raise DownloadError(f"pip download {requirement} failed: {last}")
    return whl
