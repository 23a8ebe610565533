"""The demo's corpus step against a real HTTP server on 127.0.0.1: Mini LibriSpeech-shaped archives
built from the fixture speech, downloaded whole, cut off half-way and resumed, and corrupted."""

import csv
import hashlib
import http.server
import io
import socket
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import soundfile as sf

from fast_hubert_plugin.data import mini_librispeech
from fast_hubert_plugin.data.download import DownloadError
from fast_hubert_plugin.data.mini_librispeech import PARTS, fetch_mini_librispeech
from fast_hubert_plugin.recipes.corpus import Layout, load_corpus

from conftest import REPO, SPEECH_DIR, read_corpus_tsv

sys.path.insert(0, str(REPO / "examples"))
from speech_folder import load_speech, resolve_speech_dir  # noqa: E402  (the demo's speech folders)

# fixture utterances per part, laid out as LibriSpeech/PART/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac
PART_ROWS = {
    "train-clean-5": read_corpus_tsv("so762_train.tsv")[:6],
    "dev-clean-2": read_corpus_tsv("so762_dev.tsv")[:3],
}


def build_archive(part: str, rows) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        by_chapter = {}
        for i, r in enumerate(rows):
            speaker, chapter = str(100 + 2 * i // len(rows)), "7"  # two speakers, rows in order
            utt = f"{speaker}-{chapter}-{i:04d}"
            tar.add(SPEECH_DIR / r["path"], f"LibriSpeech/{part}/{speaker}/{chapter}/{utt}.flac")
            by_chapter.setdefault((speaker, chapter), []).append(f"{utt} {r['text']}\n")
        for (speaker, chapter), lines in by_chapter.items():
            data = "".join(lines).encode()
            info = tarfile.TarInfo(f"LibriSpeech/{part}/{speaker}/{chapter}/{speaker}-{chapter}.trans.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVES = {f"{p}.tar.gz": build_archive(p, rows) for p, rows in PART_ROWS.items()}
MD5 = {p: hashlib.md5(ARCHIVES[f"{p}.tar.gz"]).hexdigest() for p in PARTS}


class ArchiveServer(http.server.ThreadingHTTPServer):
    """Serves ARCHIVES with byte ranges; ``cut_once`` sends only the first half of one response;
    ``corrupt`` flips a byte in the middle of every archive."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ArchiveHandler)
        self.cut_once, self.corrupt, self.requests = set(), False, []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/resources/31"


class ArchiveHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests.append((name, self.headers.get("Range")))
        if name not in ARCHIVES:
            self.send_error(404)
            return
        data = bytearray(ARCHIVES[name])
        if self.server.corrupt:
            data[len(data) // 2] ^= 0xFF
        start = int(self.headers["Range"][6:].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = bytes(data[start:])
        if name in self.server.cut_once:  # the connection drops half-way through
            self.server.cut_once.discard(name)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ArchiveServer()
    yield srv
    srv.shutdown()
    srv.server_close()


def finished_things(cache: Path):
    """What a later run would take as done: manifests, extracted parts, complete archives."""
    root = cache / "mini_librispeech"
    return sorted(
        str(p.relative_to(cache))
        for p in root.rglob("*")
        if p.suffix == ".tsv" or p.name.endswith(".tar.gz") or p.parent.name == "LibriSpeech"
    )


def check_corpus(root: Path):
    for part, rows in PART_ROWS.items():
        with open(root / f"{part}.tsv", encoding="utf-8") as f:
            got = list(csv.DictReader(f, delimiter="\t"))
        assert [g["text"] for g in got] == [r["text"] for r in rows]
        for g, r in zip(got, rows):
            audio = root / g["path"]
            assert audio.read_bytes() == (SPEECH_DIR / r["path"]).read_bytes()
            assert int(g["num_samples"]) == sf.info(str(audio)).frames == int(r["num_samples"])
            assert g["speaker"] == g["id"].split("-")[0]


def test_complete_download_extracts_and_writes_manifests(server, tmp_path):
    root = fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False)
    assert root == tmp_path / "mini_librispeech"
    check_corpus(root)
    assert not list(root.glob("*.tar.gz*")) and not list(root.rglob("*.extracting"))
    assert sorted(n for n, _ in server.requests) == sorted(ARCHIVES)
    # a second run finds everything done and asks the server for nothing
    fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False)
    assert len(server.requests) == len(ARCHIVES)
    corpus = load_speech(root)
    assert len(corpus.pretrain) == len(corpus.train) == 6 and len(corpus.dev) == 3
    assert all(Path(r["path"]).is_file() and r["text"] for r in corpus.train + corpus.dev)


def test_download_cut_off_half_way_resumes_where_it_stopped(server, tmp_path):
    server.cut_once = {"train-clean-5.tar.gz"}
    with pytest.raises(DownloadError, match="run again to resume"):
        fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False)
    part = tmp_path / "mini_librispeech" / "train-clean-5.tar.gz.part"
    have = part.stat().st_size
    assert have == len(ARCHIVES["train-clean-5.tar.gz"]) // 2
    assert finished_things(tmp_path) == []

    root = fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False)
    assert ("train-clean-5.tar.gz", f"bytes={have}-") in server.requests  # continued, not restarted
    check_corpus(root)


def test_corrupted_archive_fails_and_leaves_nothing_that_looks_finished(server, tmp_path):
    server.corrupt = True
    with pytest.raises(DownloadError, match="checksum mismatch .*expected " + MD5["train-clean-5"]):
        fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False)
    assert finished_things(tmp_path) == []
    assert not list((tmp_path / "mini_librispeech").rglob("*.part"))
    assert not list((tmp_path / "mini_librispeech").rglob("*.flac"))
    server.corrupt = False  # the next run downloads it anew and succeeds
    check_corpus(fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False))


def test_offline_fails_at_once_saying_what_to_download_and_where(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/resources/31"
    with pytest.raises(DownloadError) as e:
        fetch_mini_librispeech(tmp_path, url, MD5, progress=False)
    msg = str(e.value)  # both archives, their checksums, and where to put them
    assert f"cannot reach {url}/train-clean-5.tar.gz" in msg and "by hand" in msg
    assert f"{url}/dev-clean-2.tar.gz" in msg and MD5["train-clean-5"] in msg and MD5["dev-clean-2"] in msg
    assert f"put them in {tmp_path / 'mini_librispeech'}/" in msg
    assert finished_things(tmp_path) == []


def test_an_archive_put_in_the_cache_by_hand_is_verified_and_used(server, tmp_path):
    root = tmp_path / "mini_librispeech"
    root.mkdir()
    for name, data in ARCHIVES.items():
        (root / name).write_bytes(data)
    check_corpus(fetch_mini_librispeech(tmp_path, server.url, MD5, progress=False))
    assert server.requests == []


def test_speech_dir_resolution_order(server, tmp_path, monkeypatch):
    monkeypatch.delenv("FAST_HUBERT_SPEECH_DIR", raising=False)
    monkeypatch.setattr(mini_librispeech, "MD5", MD5)  # the served archives are the fixture ones
    # 1. an explicit folder, 2. the environment variable, 3. the project's speech folder, 4. download
    assert resolve_speech_dir(SPEECH_DIR, shared=tmp_path / "none") == SPEECH_DIR
    monkeypatch.setenv("FAST_HUBERT_SPEECH_DIR", str(SPEECH_DIR))
    assert resolve_speech_dir(None, shared=tmp_path / "none") == SPEECH_DIR
    monkeypatch.delenv("FAST_HUBERT_SPEECH_DIR")
    assert resolve_speech_dir(None, shared=SPEECH_DIR) == SPEECH_DIR
    assert server.requests == []
    got = resolve_speech_dir(None, shared=tmp_path / "none", cache_dir=tmp_path / "cache", base_url=server.url)
    assert got == tmp_path / "cache" / "mini_librispeech"
    with pytest.raises(FileNotFoundError, match="--speech-dir"):
        resolve_speech_dir(tmp_path / "missing")
    # the project's layout: so762 train/dev transcribed, LibriSpeech excerpts for pretraining only
    corpus = load_speech(SPEECH_DIR)
    assert (len(corpus.pretrain), len(corpus.train), len(corpus.dev)) == (48 + 8, 48, 16)


def test_the_package_reads_a_folder_by_the_layout_it_is_given(tmp_path):
    """The package knows no folder: without a layout a folder is all pretraining audio (transcripts
    add CTC rows, the last 15 % as dev); with one it splits by that layout's manifests."""
    audio = sorted(SPEECH_DIR.rglob("*.flac"))
    assert len(load_corpus(SPEECH_DIR).pretrain) == len(audio) and not load_corpus(SPEECH_DIR).train
    so762 = Layout("so762_train.tsv", "so762_dev.tsv", max_dev=10)
    corpus = load_corpus(SPEECH_DIR, [Layout("missing.tsv", "missing_dev.tsv"), so762])
    assert (len(corpus.pretrain), len(corpus.train), len(corpus.dev)) == (48, 48, 10)
    assert corpus.dev[0]["text"] and Path(corpus.dev[0]["path"]).is_file()
    (tmp_path / "t.tsv").write_text(
        "path\ttext\n" + "".join(f"{r['path']}\t{r['text']}\n" for r in read_corpus_tsv("so762_dev.tsv")[:10])
    )
    corpus = load_corpus(SPEECH_DIR, [so762], transcripts=tmp_path / "t.tsv")
    assert (len(corpus.pretrain), len(corpus.train), len(corpus.dev)) == (len(audio), 8, 2)
