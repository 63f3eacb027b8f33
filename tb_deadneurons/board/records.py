"""Checks a log dir's event files record by record (numpy and protobuf only).

The data provider hides files: a damaged record silently ends what
TensorBoard loads from its file, and a restart silently sets earlier points
aside. ``Scanner`` reads the files themselves, with the TFRecord framing and
masked CRC-32C checks TensorBoard's readers apply, and names both as
warnings (file, byte position, what TensorBoard skipped). Each file's result
is cached by size and mtime, and a grown file is read on from where the last
scan stopped, so a scan of an unchanged log dir costs one ``stat`` per file.

A TFRecord is ``uint64 length, uint32 masked_crc(length), data,
uint32 masked_crc(data)``, little-endian. What TensorBoard 2.21 does on damage:

- length header failing its CRC: neither loader can find the next record,
  so nothing after it in that file is loaded;
- data failing its CRC: the Python loader stops reading the file there
  (and retries from that record forever); the Rust data server loads the
  record as it is and reads on (seen with a bit flip in a snapshot);
- a length header with a valid CRC and an absurd length (beyond
  protobuf's 2 GiB message limit: 2^40, 2^63): the Python loader tries to
  read that many bytes (``OverflowError``/``MemoryError`` without
  TensorFlow; TensorFlow's reader in the process crashes it), the Rust data
  server aborts on the allocation. Named here as damage; never read;
- a CRC-valid record that is not an ``Event``: the Python loader raises
  ``DecodeError`` out of its reload (in ``tensorboard`` the reload thread
  dies: no run is reloaded after it), the Rust data server skips it. Named
  here and skipped;
- a file ending inside a record: both loaders wait for the rest, since a
  live writer leaves its file so between flushes (PyTorch's
  ``SummaryWriter`` and TensorBoard's writer flush every 120 s). Reported
  only once the writer has evidently moved on (``moved_on``): a later
  event file in the same directory was created after this file's last
  change, or the file has not changed for ``moved_on_seconds`` (default
  ``MOVED_ON_SECONDS``, or the environment variable ``MOVED_ON_ENV``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import struct
import threading
import time

from tensorboard.compat.proto import event_pb2

from tb_deadneurons.board import reader
from tb_deadneurons.format.tfrecord import FOOTER as _FOOTER
from tb_deadneurons.format.tfrecord import HEADER as _HEADER
from tb_deadneurons.format.tfrecord import masked_crc

# A file ending inside a record is reported once unchanged this long: five
# times the longest default flush interval of a writer of event files
# (TensorBoard's EventFileWriter and PyTorch's SummaryWriter: 120 s), so a
# paused, live run (evaluation, checkpointing) is never called damaged.
MOVED_ON_SECONDS = 600.0
# Overrides MOVED_ON_SECONDS (seconds, a number >= 0), for every Scanner
# that is not given its own ``moved_on_seconds``.
MOVED_ON_ENV = "TB_DEADNEURONS_MOVED_ON_SECONDS"
# Protobuf cannot parse a message of 2 GiB or more, so no event is that long.
MAX_RECORD = (2 << 30) - 1
# The creation time TensorBoard's, TensorFlow's and PyTorch's writers put in
# an event file's name: events.out.tfevents.<seconds>.<host>....
NOT_EVENT = "record is not an Event"
ABSURD = "length header says {} bytes (a record is < 2 GiB)"
_CREATED = re.compile(r"tfevents\.(\d+)")
# Unread bytes a background Scanner still checks within the request.
SYNC_BYTES = 8 << 20
# Read in blocks so a big file never sits in memory whole.
_BLOCK = 1 << 22


@dataclasses.dataclass
class FileScan:
    """What one event file holds, as far as it was read."""

    size: int
    mtime: float
    offset: int = 0  # the end of the last whole, valid record
    damage: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    stopped: bool = False  # a bad length header: nothing after it is readable
    partial: int = 0  # bytes of an incomplete record at the end
    steps: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    # (byte position, step) of each readable event with summary values.
    events: list[tuple[int, int]] = dataclasses.field(default_factory=list)


def _framed(f, offset: int, scan: FileScan):
    """Yields ``(position, data, masked CRC it should have)`` of each whole
    record from ``offset``; stops at a bad length header (noted in ``scan``)
    and leaves ``scan.offset`` after the last whole record."""
    f.seek(offset)
    buf, base = f.read(_BLOCK), offset
    pos = 0
    while True:
        if len(buf) - pos < _HEADER:
            more = f.read(_BLOCK)
            if not more:
                break
            buf, base, pos = buf[pos:] + more, base + pos, 0
            continue
        header = buf[pos : pos + 8]
        if struct.unpack("<I", buf[pos + 8 : pos + 12])[0] != masked_crc(header):
            scan.damage.append((base + pos, "bad length header (CRC mismatch)"))
            scan.stopped = True
            scan.offset = base + pos
            return
        length = struct.unpack("<Q", header)[0]
        if length > MAX_RECORD:
            scan.damage.append((base + pos, ABSURD.format(length)))
            scan.stopped = True
            scan.offset = base + pos
            return
        end = pos + _HEADER + length + _FOOTER
        if base + end > scan.size:
            break  # ends beyond the file (as stat saw it): never read it
        if len(buf) < end:
            # Drop what was consumed before reading on: growing the whole
            # buffer instead copied the file so far at every block (quadratic:
            # minutes for a 1.2 GB file).
            buf, base, end, pos = buf[pos:], base + pos, end - pos, 0
        while len(buf) < end:
            more = f.read(max(_BLOCK, end - len(buf)))
            if not more:
                break
            buf += more
        if len(buf) < end:
            break
        expected = struct.unpack("<I", buf[end - _FOOTER : end])[0]
        yield base + pos, buf[pos + _HEADER : end - _FOOTER], expected
        pos = end
        scan.offset = base + pos
    scan.partial = max(0, scan.size - scan.offset)


def _records(f, offset: int, scan: FileScan):
    """Yields ``(position, data)`` of the records from ``offset`` whose data
    passes its CRC; notes the others in ``scan``."""
    for position, data, expected in _framed(f, offset, scan):
        if masked_crc(data) != expected:
            scan.damage.append((position, "record data fails its CRC"))
        else:
            yield position, data


def scan_file(path: str, previous: FileScan | None = None) -> FileScan:
    """Scans ``path``, reading on from ``previous`` when the file only grew."""
    st = os.stat(path)
    if previous and (previous.size, previous.mtime) == (st.st_size, st.st_mtime):
        return previous
    if previous and st.st_size >= previous.size and not previous.stopped:
        scan = dataclasses.replace(previous, size=st.st_size, mtime=st.st_mtime)
        scan.damage, scan.partial = list(previous.damage), 0
        scan.steps = {t: list(s) for t, s in previous.steps.items()}
        scan.events = list(previous.events)
    else:
        scan = FileScan(st.st_size, st.st_mtime)
    with open(path, "rb") as f:
        for position, data in _records(f, scan.offset, scan):
            try:
                event = event_pb2.Event.FromString(data)
            except Exception:  # noqa: BLE001 - protobuf's DecodeError and kin
                scan.damage.append((position, NOT_EVENT))
                continue
            for value in event.summary.value:
                scan.steps.setdefault(value.tag, []).append(event.step)
            if event.summary.value:
                scan.events.append((position, event.step))
    return scan


def _after(scan: FileScan, position: int) -> str:
    """The readable events after ``position``: "3 events, steps 6..9"."""
    steps = [step for pos, step in scan.events if pos > position]
    if not steps:
        return "no readable event after it"
    return f"{len(steps)} events after it, steps {min(steps)}..{max(steps)}"


def default_moved_on_seconds() -> float:
    """``MOVED_ON_SECONDS``, or ``MOVED_ON_ENV``'s value where it is set.

    Raises:
      ValueError: ``MOVED_ON_ENV`` is set to something other than a finite
        number >= 0 (naming the variable and the value).
    """
    raw = os.environ.get(MOVED_ON_ENV)
    if raw is None:
        return MOVED_ON_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(
            f"{MOVED_ON_ENV} must be a number of seconds >= 0, got {raw!r}"
        )
    return value


def created(path: str) -> int | None:
    """The creation time (whole seconds) in an event file's name, or None."""
    match = _CREATED.search(os.path.basename(path))
    return int(match.group(1)) if match else None


def moved_on(scan: FileScan, siblings: list[str], now: float, age: float) -> bool:
    """Whether the writer of ``scan``'s file has evidently left it: the file
    is unchanged for ``age`` seconds, or one of ``siblings`` (the other
    event files in its directory) was created after the file last changed.
    A live writer between two flushes satisfies neither."""
    if now - scan.mtime >= age:
        return True
    return any((created(other) or 0) > scan.mtime for other in siblings)


def _damage_warnings(name: str, scan: FileScan, moved: bool) -> list[str]:
    out = []
    for position, what in sorted(scan.damage):
        if what == NOT_EVENT:
            skipped = (
                "skipped; the Rust data server reads on past it, TensorBoard's "
                "Python loader (--load_fast=false) stops reloading there"
            )
        elif what.startswith(ABSURD[:18]):
            skipped = (
                "nothing after it is read; TensorBoard's own loaders cannot "
                "survive it (see docs/routes.md)"
            )
        elif scan.stopped and position == scan.offset:
            skipped = (
                f"neither loader reads the {scan.size - position} bytes from here "
                "to the end of the file"
            )
        else:
            skipped = (
                "TensorBoard's Python loader (--load_fast=false) reads nothing "
                f"from here on ({scan.size - position} bytes, "
                f"{_after(scan, position)}); the Rust data server loads the "
                "damaged record as it is"
            )
        out.append(f"event file {name}, byte {position}: {what}; {skipped}")
    if scan.partial and moved:
        out.append(
            f"event file {name}, byte {scan.offset}: ends inside a record "
            f"({scan.partial} bytes, truncated) and its writer has moved on; "
            "TensorBoard waits for the rest"
        )
    return out


def _restart_warning(run: str, steps: dict[str, list[int]]) -> str | None:
    # A step logged twice is a repeat (the HF Trainer's last step), not a
    # restart: only a run where some series goes back is warned about.
    if not any(reader.goes_back(tag_steps) for tag_steps in steps.values()):
        return None
    set_aside, low, high, tags = 0, None, None, 0
    for tag_steps in steps.values():
        keep = reader.after_restarts(tag_steps)
        if keep.all():
            continue
        dropped = [s for s, k in zip(tag_steps, keep, strict=True) if not k]
        set_aside, tags = set_aside + len(dropped), tags + 1
        low = min(dropped) if low is None else min(low, *dropped)
        high = max(dropped) if high is None else max(high, *dropped)
    if not set_aside:
        return None
    return (
        f"run {run}: steps go back (a re-run or a resume into the same run); "
        f"as TensorBoard does, {set_aside} earlier points of {tags} tags at "
        f"steps {low}..{high} are set aside and the later ones shown"
    )


class Scanner:
    """Damage and restart warnings for the event files under a log dir.

    Thread-safe; keep one per log dir so its cache lasts. A log dir that is
    not a local directory (``gs://...``) gives no warnings. A first scan
    is bound by reading the files (the CRC runs at GB/s); with
    ``background=True`` more than ``SYNC_BYTES`` of unread bytes are scanned
    in a thread, and ``warnings`` answers at once with what is known so far
    and a line saying the check is under way. ``moved_on_seconds`` is how
    long a file ending inside a record must stay unchanged to be reported
    (default: ``default_moved_on_seconds()``); see ``moved_on``.

    Raises:
      ValueError: ``moved_on_seconds`` (or ``MOVED_ON_ENV``) is not a
        finite number >= 0.
    """

    def __init__(
        self,
        logdir: str | None,
        background: bool = False,
        moved_on_seconds: float | None = None,
    ):
        self._logdir = logdir
        if moved_on_seconds is None:
            moved_on_seconds = default_moved_on_seconds()
        elif not 0 <= moved_on_seconds < float("inf"):
            raise ValueError(
                f"moved_on_seconds must be a number >= 0, got {moved_on_seconds!r}"
            )
        self._age = float(moved_on_seconds)
        self._background = background
        self._files: dict[str, FileScan] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()  # guards _files, _errors, _thread
        self._scan_lock = threading.Lock()  # one scan at a time
        self._thread: threading.Thread | None = None
        self._restart_cache: dict[str, tuple] = {}

    def _paths(self) -> list[str]:
        logdir = self._logdir
        if not logdir or "://" in logdir or not os.path.isdir(logdir):
            return []
        paths = []
        for root, _, files in os.walk(logdir):
            # TensorBoard's test for an event file (io_wrapper.IsTensorFlowEventsFile).
            paths += [os.path.join(root, f) for f in files if "tfevents" in f]
        return sorted(paths)

    def _unread(self, paths: list[str]) -> int:
        total = 0
        for path in paths:
            with contextlib.suppress(OSError):
                st, known = os.stat(path), self._files.get(path)
                if known and (known.size, known.mtime) == (st.st_size, st.st_mtime):
                    continue
                if known is None or known.stopped or st.st_size < known.size:
                    total += st.st_size  # read from the start
                else:
                    total += st.st_size - known.offset
        return total

    def _scan(self, paths: list[str]) -> None:
        with self._scan_lock:
            for path in paths:
                try:
                    scan, error = scan_file(path, self._files.get(path)), None
                except OSError as e:
                    scan, error = None, f"unreadable ({e})"
                with self._lock:
                    if scan is not None:
                        self._files[path] = scan
                    if error:
                        self._errors[path] = error
                    else:
                        self._errors.pop(path, None)

    def warnings(self, run: str | None = None) -> list[str]:
        """Warnings in file order; only ``run``'s files when it is given."""
        paths = self._paths()
        unread = self._unread(paths)
        note = []
        if self._background and unread > SYNC_BYTES:
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._scan, args=(paths,), daemon=True
                    )
                    self._thread.start()
            note = [
                f"checking {unread / 2**20:.0f} MiB of event files for damage "
                "and restarts; their warnings follow when done"
            ]
        else:
            self._scan(paths)
        return self._report(paths, run) + note

    def _moved(self, paths: list[str], files: dict[str, FileScan]) -> set[str]:
        """The scanned ``paths`` whose writers have moved on (``moved_on``)."""
        now, by_dir = time.time(), {}
        for path in paths:
            by_dir.setdefault(os.path.dirname(path), []).append(path)
        return {
            path
            for path in paths
            if path in files
            and moved_on(
                files[path],
                [p for p in by_dir[os.path.dirname(path)] if p != path],
                now,
                self._age,
            )
        }

    def readable_ends(self) -> dict[str, int]:
        """Event file path -> the byte where its readable part ends, for the
        files TensorBoard's loaders cannot read to the end: a bad or absurd
        length header (nothing after it is readable), or a cut-off record
        whose writer has moved on. Scans first, like ``warnings()``."""
        paths = self._paths()
        self._scan(paths)
        with self._lock:
            files = dict(self._files)
        moved = self._moved(paths, files)
        return {
            path: scan.offset
            for path, scan in files.items()
            if path in paths and (scan.stopped or (scan.partial and path in moved))
        }

    def _report(self, paths: list[str], run: str | None) -> list[str]:
        out, by_run = [], {}
        with self._lock:
            files, errors = dict(self._files), dict(self._errors)
        moved = self._moved(paths, files)
        for path in paths:
            rel = os.path.relpath(path, self._logdir)
            name = os.path.dirname(rel) or "."
            if run is not None and name != run:
                continue
            if path in errors:
                out.append(f"event file {rel}: {errors[path]}")
            if path not in files:
                continue
            out += _damage_warnings(rel, files[path], path in moved)
            by_run.setdefault(name, []).append(files[path])
        for name, scans in by_run.items():
            warning = self._restarts(name, scans)
            if warning:
                out.append(warning)
        return out

    def _restarts(self, run: str, scans: list[FileScan]) -> str | None:
        """``_restart_warning`` of a run's files, cached by their sizes."""
        key = tuple((scan.size, scan.mtime) for scan in scans)
        cached = self._restart_cache.get(run)
        if cached and cached[0] == key:
            return cached[1]
        merged: dict[str, list[int]] = {}
        for scan in scans:
            for tag, steps in scan.steps.items():
                merged.setdefault(tag, []).extend(steps)
        warning = _restart_warning(run, merged)
        self._restart_cache[run] = (key, warning)
        return warning
