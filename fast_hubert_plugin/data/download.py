"""Corpus archives: resumable download, checksum verification, atomic extraction.

A download streams into ``NAME.part`` and continues from its size after an interruption (an
HTTP ``Range`` request); only a complete file is renamed to ``NAME``. An archive is verified
(MD5) before anything is extracted; one that fails is deleted. Extraction goes into a temporary
folder beside the target and is renamed into place, so a folder that exists is complete.
"""

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from tqdm import tqdm

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download or verification that could not complete; the message says what to do."""


class Unreachable(DownloadError):
    """The server could not be reached at all (offline, wrong host): nothing was fetched."""

    def __init__(self, url: str, reason, advice: str):
        super().__init__(f"cannot reach {url} ({reason}); {advice}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class Archive:
    """One file to fetch: where from, its checksum and (for messages) its approximate size."""

    url: str
    md5: str
    approx_mb: Optional[int] = None

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(archive: Archive, dest: Path) -> str:
    size = f" ({archive.approx_mb} MB)" if archive.approx_mb else ""
    return (
        f"download {archive.url}{size} by hand, put it at {dest} (MD5 {archive.md5}) and run again; "
        "or pass --speech-dir with a folder of your own audio"
    )


def download(archive: Archive, dest: Path, timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch ``archive`` to ``dest`` unless it is already there; resume a ``dest.part`` left behind."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the .part is already whole
            os.replace(part, dest)
            return dest
        raise DownloadError(f"{archive.url}: HTTP {e.code} {e.reason}; {_by_hand(archive, dest)}") from None
    except (TimeoutError, urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(archive.url, reason, _by_hand(archive, dest)) from None
    with response:
        if have and response.status != 206:  # the server ignored the range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        try:
            with (
                open(part, "ab" if have else "wb") as f,
                tqdm(
                    total=total,
                    initial=have,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=archive.name,
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (TimeoutError, OSError, urllib.error.URLError) as e:
            raise DownloadError(
                f"{archive.url}: interrupted after {part.stat().st_size} bytes ({e}); run again to resume from {part}"
            ) from None
    got = part.stat().st_size
    if total is not None and got < total:
        raise DownloadError(
            f"{archive.url}: connection closed after {got} of {total} bytes; run again to resume from {part}"
        )
    os.replace(part, dest)
    return dest


def verify(path: Path, md5: str) -> None:
    """Delete ``path`` and raise when its MD5 is not ``md5`` (a corrupt or wrong archive)."""
    got = md5sum(path)
    if got != md5:
        path.unlink()
        raise DownloadError(
            f"{path}: checksum mismatch (MD5 {got}, expected {md5}); the file was deleted, "
            "run again to download it anew"
        )


def extract_member_dir(archive_path: Path, member: str, target: Path) -> Path:
    """Extract the folder ``member`` of a tar archive to ``target``, atomically.

    Everything is unpacked into a temporary folder beside ``target`` (tarfile's ``data`` filter
    refuses absolute paths, links out of the tree and device files), then renamed into place.
    """
    target = Path(target)
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent))
    try:
        with tarfile.open(archive_path) as tar:
            tar.extractall(tmp, filter="data")
        if not (tmp / member).is_dir():
            raise DownloadError(f"{archive_path}: no folder {member} inside; is this the right archive?")
        os.replace(tmp / member, target)
    except tarfile.TarError as e:
        raise DownloadError(f"{archive_path}: cannot be unpacked ({e}); delete it and run again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
