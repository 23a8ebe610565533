"""Running the toolkit's CLIs as recipe stages: resumable stages, logged subprocesses, CPU accounting.

A stage is done when its marker (``WORK/.done/NAME``, JSON, written atomically last) exists; a
killed run leaves no marker, so the next run redoes that stage, and fairseq training stages resume
from their ``checkpoint_last.pt``. Every subprocess is accounted in wall-clock and CPU seconds
(user + system of that process and its children, from ``os.wait4``), the measure the benchmarks
budget by: unlike wall-clock it does not grow when other work shares the cores.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

from tqdm import tqdm

from ..utils.atomic import atomic_write_text

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A console script of this environment (the one running this Python), else from PATH."""
    path = BIN / name
    return str(path) if path.exists() else name


class Usage(NamedTuple):
    wall_s: float
    cpu_s: float


class StageFailed(RuntimeError):
    """A CLI of a stage exited non-zero; the message holds the command and the end of its log."""


class StageMismatch(ValueError):
    """A stage was done before with other settings than this run asks for."""


class Stage:
    """``with Stage(work, name, params=...) as s: if not s.done: ...; s.result = {...}``.

    Skipped (``s.done``) when its marker exists; ``s.result`` is then the stored result. On success
    the marker is written with the result, the ``params`` the stage ran with and its wall-clock
    seconds. A marker written with other ``params`` is refused (StageMismatch): a finished stage is
    never silently reused for different settings, nor silently overwritten."""

    def __init__(self, work: Path, name: str, title: str = "", quiet: bool = False, params: Optional[Dict] = None):
        self.marker = Path(work) / ".done" / name
        self.name, self.title, self.quiet = name, title or name, quiet
        self.params = json.loads(json.dumps(params or {}, default=str))  # as it reads back from the marker
        self.done = self.marker.exists()
        stored = json.loads(self.marker.read_text()) if self.done else {}
        if self.done and "params" in stored and stored["params"] != self.params:
            before, now = stored["params"], self.params
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            was = ", ".join(f"{k}={before.get(k)}" for k in changed)
            asked = ", ".join(f"{k}={now.get(k)}" for k in changed)
            raise StageMismatch(
                f"stage {name} in {work} was done with {was}; this run asks for {asked}. Fix: use "
                f"another work folder, or delete {self.marker} (and the stage's outputs) to redo it"
            )
        self.result: Dict = stored.get("result", {})
        self.seconds: float = stored.get("seconds", 0.0)

    def __enter__(self):
        self.start = time.time()
        if not self.quiet:
            print(f"\n== {self.title}" + (" (done before: skipped)" if self.done else ""), flush=True)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and not self.done:
            self.seconds = round(time.time() - self.start, 1)
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.marker,
                json.dumps({"seconds": self.seconds, "params": self.params, "result": self.result}, indent=1),
            )
            if not self.quiet and self.seconds >= 10:  # no stage runs long without a word on the console
                print(f"   {self.title}: done in {self.seconds:.0f} s", flush=True)
        return False


def _wait(proc: subprocess.Popen, start: float) -> Usage:
    """Reap ``proc`` and return its wall-clock and CPU seconds (its own and its children's)."""
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(round(time.time() - start, 2), round(rusage.ru_utime + rusage.ru_stime, 2))


def _env(threads: Optional[int]) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def _fail(cmd: Sequence[str], log: Path):
    tail = "".join(open(log, errors="replace").readlines()[-40:]) if log.exists() else ""
    raise StageFailed(f"failed: {' '.join(cmd)}\n--- last lines of {log} ---\n{tail}")


def run_cli(cmd: Iterable, log: Path, threads: Optional[int] = None) -> Usage:
    """Run a CLI with its output in ``log``; raise StageFailed (with the log's end) if it fails."""
    cmd = [str(c) for c in cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(threads))
        usage = _wait(proc, start)
    if proc.returncode != 0:
        _fail(cmd, log)
    return usage


def parse_log_records(text: str, tag: str = "train_inner") -> List[dict]:
    """The JSON records fairseq logged under ``[tag]`` (train_inner, train, valid; log_format: json)."""
    return [json.loads(line[line.index("{") :]) for line in text.splitlines() if f"[{tag}]" in line and "{" in line]


def log_records(log: Path, tag: str) -> List[dict]:
    """``parse_log_records`` of a log file; none when it does not exist yet."""
    return parse_log_records(Path(log).read_text(errors="replace"), tag) if Path(log).exists() else []


def run_training(
    cmd: Iterable, log: Path, max_update: int, desc: str, threads: Optional[int] = None, progress: bool = True
) -> Usage:
    """A fairseq-hydra-train run with a progress bar following num_updates in its JSON logs.

    The log is appended to, so a resumed run keeps the record of the interrupted one."""
    cmd = [str(c) for c in cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with open(log, "a") as f, tqdm(total=max_update, desc=desc, unit="upd", disable=not progress) as bar:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(threads))
        for line in proc.stdout:
            f.write(line)
            if "[train_inner]" in line and "{" in line:
                rec = json.loads(line[line.index("{") :])
                bar.update(int(rec["num_updates"]) - bar.n)
                bar.set_postfix(loss=rec.get("loss"))
        usage = _wait(proc, start)
        if proc.returncode == 0:  # the last updates may fall between two logged records
            bar.update(max_update - bar.n)
    if proc.returncode != 0:
        _fail(cmd, log)
    return usage
