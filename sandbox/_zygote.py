"""The code that runs inside the isolation layer: the zygote, the program, the test evaluator.

Standard library only: the host passes this file's source to ``python -I -S -B -c`` (inside
bubblewrap, or without isolation when the caller explicitly allows it), with one JSON
argument (the worker config). The design is described in the ``starloop.sandbox`` docstring.

Processes of one run, inside the worker's namespaces::

    zygote     long-lived, single-threaded, never runs untrusted code; per run it mounts a
               fresh tmpfs on /sandbox and forks
      program    the worker's unprivileged uid, rlimits, seccomp; runs the solution, then (with
                 tests) serves the evaluator's calls; when it exits, the zygote kills whatever
                 still runs under its uid and unmounts the tmpfs
      evaluator  (with tests) forked after the program; reads the tests, runs them, calls into
                 the program through a pipe; reports per-test outcomes to the zygote

Rootless mode (no uid to give away): the zygote forks each run's first process into a new pid
namespace (``unshare(CLONE_NEWPID)`` before the fork, ``setns`` back after it), where it is pid 1:
a minimal *init* (own mount and ipc namespaces, no signal handlers, not dumpable, one zombie
child so that ``kill(-1)`` behaves as in uid mode) whose child runs the solution. The program is
not pid 1 because the kernel drops signals without a handler that pid 1 gets from inside its
namespace (a program killing itself, SIGXCPU at the CPU limit). When the program ends, the init
writes its wait status to a pipe and exits, and the kernel kills everything left in the
namespace; the zygote reports that status as the program's (the init's own, if the zygote had to
kill it), and the init's resource usage, which includes the program's, so statuses are those of
uid mode.

Program <-> evaluator messages use the same frames, except that the program writes a large
message as a run of chunks (see ``CHUNK``), which the evaluator accepts up to the run's memory
limit in all. Host <-> zygote frames are a 4-byte big-endian length then UTF-8 JSON. Per job the host writes
frame A (program, stdin, limits) and, with tests, frame B (the tests): the zygote reads only A,
so the program, a fork of the zygote, never holds the tests; the evaluator reads B.
"""

from __future__ import annotations

import ast
import base64
import builtins
import collections
import ctypes
import fcntl
import gc
import importlib
import json
import math
import os
import resource
import select
import signal
import struct
import sys
import time
import types

# ---------------------------------------------------------------------------------------------
# libc

_LIBC = ctypes.CDLL(None, use_errno=True)


def _libc_fn(name: str, restype, *argtypes):
    """A libc function with its signature declared: calls convert plain ints and bytes in C, so a
    forked program's prologue creates no ctypes objects (each would cost it copy-on-write faults)."""
    fn = _LIBC[name]
    fn.restype, fn.argtypes = restype, argtypes
    return fn


_c_int, _c_ulong, _c_char_p = ctypes.c_int, ctypes.c_ulong, ctypes.c_char_p
_unshare_fn = _libc_fn("unshare", _c_int, _c_int)
_mount_fn = _libc_fn("mount", _c_int, _c_char_p, _c_char_p, _c_char_p, _c_ulong, _c_char_p)
_umount2_fn = _libc_fn("umount2", _c_int, _c_char_p, _c_int)
_prctl_fn = _libc_fn("prctl", _c_int, _c_int, _c_ulong, _c_ulong, _c_ulong, _c_ulong)
_setns_fn = _libc_fn("setns", _c_int, _c_int, _c_int)
# rootless mode: clone(_exit, stack, CLONE_VM | SIGCHLD, NULL) makes a process that exits at once,
# without the cost of a fork (the stack is only the clone wrapper's and _exit's, used once per run)
_clone_fn = _libc_fn("clone", _c_int, ctypes.c_void_p, ctypes.c_void_p, _c_int, ctypes.c_void_p)
_EXIT_ADDR = ctypes.cast(_LIBC["_exit"], ctypes.c_void_p).value
_ZOMBIE_STACK = ctypes.create_string_buffer(8192)
_ZOMBIE_STACK_TOP = (ctypes.addressof(_ZOMBIE_STACK) + 8192 - 64) & ~15

CLONE_VM, CLONE_NEWNS = 0x100, 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE, MNT_DETACH = 2, 4, 8, 16384, 1 << 18, 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 4, 38, 36
PR_SET_SECCOMP, PR_SET_SECUREBITS = 22, 28

_PIDNS_FD = -1  # rootless mode: the zygote's own pid namespace, to return to after each program's fork
EXIT_MEMORY = 121  # the program prologue's exit status for an uncaught MemoryError
WORK, TMP, SHM = "/sandbox/work", "/sandbox/tmp", "/sandbox/shm"


def _ok(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _ok(_unshare_fn(flags), "unshare")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _ok(_mount_fn(enc(src), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _prctl(option: int, arg: int = 0) -> None:
    _ok(_prctl_fn(option, arg, 0, 0, 0), f"prctl {option}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


# ctypes objects the program's prologue uses are made once, in the zygote: every object a fork
# creates or touches costs it copy-on-write page faults
_CAP_HEADER = _CapHeader(0x20080522, 0)
_CAP_NONE = (_CapData * 2)()
_capset_fn = _libc_fn("capset", _c_int, ctypes.POINTER(_CapHeader), ctypes.POINTER(_CapData))


def _capset(keep: tuple[int, ...]) -> None:
    """Reduce this process's capabilities to ``keep`` (effective and permitted)."""
    # PR_CAP_AMBIENT_CLEAR_ALL: ambient capabilities (bubblewrap sets them) would survive otherwise
    _prctl_fn(47, 4, 0, 0, 0)
    data = _CAP_NONE
    if keep:
        data = (_CapData * 2)()
        for cap in keep:
            data[cap // 32].effective |= 1 << (cap % 32)
            data[cap // 32].permitted |= 1 << (cap % 32)
    _ok(_capset_fn(_CAP_HEADER, data), "capset")


# seccomp: deny system calls an unprivileged program has no use for and that widen the kernel's
# attack surface (namespaces, mounts, ptrace, bpf, io_uring, keyrings, modules, ...).
_X86_64_DENY = (
    101, 103, 134, 135, 153, 155, 161, 163, 165, 166, 167, 168, 169, 172, 173, 175, 176, 179, 212, 246,
    248, 249, 250, 272, 298, 300, 303, 304, 308, 310, 311, 312, 313, 320, 321, 323, 425, 426, 427, 428,
    429, 430, 431, 432, 433, 438, 442,
    29, 30, 31, 64, 65, 66, 68, 69, 70, 71, 220, 240, 241, 242, 243, 244, 245,
)  # ptrace syslog uselib personality vhangup pivot_root chroot acct mount umount2 swapon swapoff
# reboot iopl ioperm init_module delete_module quotactl lookup_dcookie kexec_load add_key request_key
# keyctl unshare perf_event_open fanotify_init name_to_handle_at open_by_handle_at setns
# process_vm_readv process_vm_writev kcmp finit_module kexec_file_load bpf userfaultfd io_uring_*
# open_tree move_mount fsopen fsconfig fsmount fspick pidfd_getfd mount_setattr; System V IPC
# (shmget shmat shmctl semget semop semctl msgget msgsnd msgrcv msgctl semtimedop) and POSIX
# message queues (mq_*): their objects outlive the processes, and runs share a worker
_NS_FLAGS = 0x7E020000  # CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}
_SIGNAL_CALLS = (62, 129, 200, 234, 297)  # kill rt_sigqueueinfo tkill tgkill rt_tgsigqueueinfo: pid first


def _seccomp_filter() -> bytes | None:
    if os.uname().machine != "x86_64":
        return None
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, kill = 0x7FFF0000, 0x80000000
    eperm, enosys = 0x00050000 | 1, 0x00050000 | 38
    actions = {
        "allow": [(ret, 0, 0, allow)],
        "deny": [(ret, 0, 0, eperm)],
        "clone3": [(ret, 0, 0, enosys)],  # libc falls back to clone
        # prctl(PR_SET_PDEATHSIG): no program needs a parent-death signal
        "prctl": [(ld, 0, 0, 16), (jeq, 0, 1, PR_SET_PDEATHSIG), (ret, 0, 0, eperm), (ret, 0, 0, allow)],
        "clone": [(ld, 0, 0, 16), (jset, 0, 1, _NS_FLAGS), (ret, 0, 0, eperm), (ret, 0, 0, allow)],
        # signals to pid 1 (bubblewrap's init; in rootless mode the run's init, the program's
        # parent, which the kernel would let the program signal, though it ignores the signals)
        "signal": [(ld, 0, 0, 16), (jeq, 0, 1, 1), (ret, 0, 0, eperm), (ret, 0, 0, allow)],
    }
    special = {56: "clone", 157: "prctl", 435: "clone3"}
    special.update(dict.fromkeys(_SIGNAL_CALLS, "signal"))
    # the syscall numbers as intervals [starts[i], starts[i + 1]) of one action each, found by a
    # binary search: every program installs this filter, and the kernel then runs it once for
    # each system call number (to cache the ones always allowed); a linear scan of the denied
    # numbers made that cost about 100 microseconds more per program
    starts, kinds = [0], ["allow"]
    for nr in range(max(max(_X86_64_DENY), max(special)) + 2):
        kind = special.get(nr, "deny" if nr in _X86_64_DENY else "allow")
        if kind != kinds[-1] or kind not in ("allow", "deny"):
            starts.append(nr)
            kinds.append(kind)

    def tree(lo: int, hi: int) -> list:
        if lo == hi:
            return list(actions[kinds[lo]])
        mid = (lo + hi + 1) // 2
        left, right = tree(lo, mid - 1), tree(mid, hi)
        return [(jge, len(left), 0, starts[mid])] + left + right

    ins = [(ld, 0, 0, 4), (jeq, 1, 0, 0xC000003E), (ret, 0, 0, kill), (ld, 0, 0, 0),
           (jge, 0, 1, 0x40000000), (ret, 0, 0, eperm)] + tree(0, len(starts) - 1)
    assert all(i[1] < 256 and i[2] < 256 for i in ins)
    return b"".join(struct.pack("=HBBI", *i) for i in ins)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP = _seccomp_filter()
_SECCOMP_BUF = ctypes.create_string_buffer(_SECCOMP, len(_SECCOMP)) if _SECCOMP else None
_SECCOMP_PROG = _SockFprog(len(_SECCOMP) // 8, ctypes.cast(_SECCOMP_BUF, ctypes.c_void_p)) if _SECCOMP else None
_SECCOMP_PROG_ADDR = ctypes.addressof(_SECCOMP_PROG) if _SECCOMP else 0


def _install_seccomp() -> None:
    _ok(_prctl_fn(PR_SET_SECCOMP, 2, _SECCOMP_PROG_ADDR, 0, 0), "seccomp")  # SECCOMP_MODE_FILTER


# ---------------------------------------------------------------------------------------------
# framing

_HDR = struct.Struct("!I")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got:
                raise EOFError("truncated frame")
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _dumps(obj) -> bytes:
    data = json.dumps(obj, separators=(",", ":")).encode()
    return _HDR.pack(len(data)) + data


def _send(fd: int, obj) -> None:
    _write_all(fd, _dumps(obj))


def _recv(fd: int):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, _HDR.unpack(head)[0])
    if body is None:
        raise EOFError("truncated frame")
    return json.loads(body)


# ---------------------------------------------------------------------------------------------
# the value codec: plain data only crosses between the evaluator and the program

MAX_DEPTH = 100
# Messages on the call channel are frames (4-byte length, then JSON text). The program's side
# writes a large message as a run of chunks, the length's top bit meaning "more follows", so
# that no large value is ever turned into one big string; ABORT drops the chunks sent so far.
# The evaluator accepts messages up to the run's memory limit in all (see _PipeTransport).
CHUNK = 1 << 20
MORE, ABORT = 0x80000000, 0xFFFFFFFF
_BATCH, _LONG_STR = 4096, 1 << 16


class _ProtocolError(BaseException):
    """The program's side of the channel sent something that is not a valid message."""


class _Unencodable(Exception):
    pass


def _stdlib_type(x, module: str, name: str) -> bool:
    t = type(x)
    return t.__name__ == name and t.__module__ == module


class _Codec:
    """JSON-compatible tagged encoding of plain values.

    Scalars are JSON scalars; containers and special values are lists whose first item is a
    tag. Anything else goes through ``ref`` (a handle to an object that stays on its side).
    The decoder builds only genuine built-in objects, so a decoded value's ``==`` is Python's.
    """

    def __init__(self, ref, deref) -> None:
        self.ref, self.deref = ref, deref

    def enc(self, x, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _Unencodable("nested too deeply")
        t, d = type(x), depth + 1
        if x is None or t is bool or t is str:
            return x
        if t is int:
            return x if -(1 << 53) < x < (1 << 53) else ["I", format(x, "x")]
        if t is float:
            return x if math.isfinite(x) else ["F", repr(x)]
        if t is list:
            return ["L", [self.enc(v, d) for v in x]]
        if t is tuple:
            return ["T", [self.enc(v, d) for v in x]]
        if t is dict or t is collections.defaultdict:
            return ["D", [[self.enc(k, d), self.enc(v, d)] for k, v in x.items()]]
        if t is set:
            return ["S", [self.enc(v, d) for v in x]]
        if t is frozenset:
            return ["Z", [self.enc(v, d) for v in x]]
        if t is bytes:
            return ["B", base64.b64encode(x).decode()]
        if t is bytearray:
            return ["BA", base64.b64encode(x).decode()]
        if t is complex:
            return ["C", self.enc(x.real, d), self.enc(x.imag, d)]
        if t is range:
            return ["R", self.enc(x.start, d), self.enc(x.stop, d), self.enc(x.step, d)]
        if t is collections.OrderedDict:
            return ["OD", [[self.enc(k, d), self.enc(v, d)] for k, v in x.items()]]
        if t is collections.Counter:
            return ["CN", [[self.enc(k, d), self.enc(v, d)] for k, v in x.items()]]
        if t is collections.deque:
            return ["Q", [self.enc(v, d) for v in x], x.maxlen]
        if _stdlib_type(x, "decimal", "Decimal"):
            return ["DE", str(x)]
        if _stdlib_type(x, "fractions", "Fraction"):
            return ["FR", self.enc(x.numerator, d), self.enc(x.denominator, d)]
        # subclasses of plain types (named tuples, str/int subclasses, ...) travel as their base value
        for base in (bool, int, float, str, bytes, tuple, list, dict, set, frozenset, complex):
            if isinstance(x, base):
                return self.enc(base(x), d)
        return self.ref(x)

    def dec(self, x, depth: int = 0):
        if depth > MAX_DEPTH:
            raise _ProtocolError("value nested too deeply")
        if x is None or type(x) in (bool, int, float, str):
            return x
        if type(x) is not list or not x or type(x[0]) is not str:
            raise _ProtocolError("malformed value")
        tag, d = x[0], depth + 1
        try:
            if tag in ("L", "T", "S", "Z", "Q"):
                items = [self.dec(v, d) for v in self._seq(x[1])]
                if tag == "L":
                    return items
                if tag == "T":
                    return tuple(items)
                if tag == "S":
                    return set(items)
                if tag == "Z":
                    return frozenset(items)
                maxlen = x[2] if len(x) > 2 else None
                if maxlen is not None and type(maxlen) is not int:
                    raise _ProtocolError("malformed deque")
                return collections.deque(items, maxlen)
            if tag in ("D", "OD", "CN"):
                pairs = [(self.dec(p[0], d), self.dec(p[1], d)) for p in self._seq(x[1]) if self._pair(p)]
                if tag == "CN":
                    return collections.Counter(dict(pairs))
                return (dict if tag == "D" else collections.OrderedDict)(pairs)
            if tag == "I" and type(x[1]) is str:
                return int(x[1], 16)
            if tag == "F" and x[1] in ("nan", "inf", "-inf"):
                return float(x[1])
            if tag in ("B", "BA") and type(x[1]) is str:
                raw = base64.b64decode(x[1], validate=True)
                return raw if tag == "B" else bytearray(raw)
            if tag == "C":
                return complex(self._num(self.dec(x[1], d)), self._num(self.dec(x[2], d)))
            if tag == "R":
                return range(*(self._int(self.dec(v, d)) for v in x[1:4]))
            if tag == "DE" and type(x[1]) is str and len(x[1]) < 10_000:
                import decimal

                return decimal.Decimal(x[1])
            if tag == "FR":
                import fractions

                return fractions.Fraction(self._int(self.dec(x[1], d)), self._int(self.dec(x[2], d)))
            if tag in ("H", "CB") and type(x[1]) is int:
                return self.deref(tag, x[1])
        except _ProtocolError:
            raise
        except Exception as exc:  # unhashable keys, bad base64, ...
            raise _ProtocolError(f"malformed value: {type(exc).__name__}") from None
        raise _ProtocolError(f"unknown value tag {tag!r}")

    @staticmethod
    def _seq(x):
        if type(x) is not list:
            raise _ProtocolError("malformed container")
        return x

    @staticmethod
    def _pair(p) -> bool:
        if type(p) is not list or len(p) != 2:
            raise _ProtocolError("malformed mapping")
        return True

    @staticmethod
    def _num(v):
        if type(v) not in (int, float):
            raise _ProtocolError("malformed number")
        return v

    @staticmethod
    def _int(v):
        if type(v) is not int:
            raise _ProtocolError("malformed integer")
        return v


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class _Peer:
    """Request/response over one channel; while waiting for its answer, serves the other side."""

    def __init__(self, transport, handle) -> None:
        self.transport, self.handle, self.n = transport, handle, 0

    def request(self, msg: dict) -> dict:
        self.n += 1
        rid = self.n
        msg["t"], msg["i"] = "q", rid
        self.transport.send(msg)
        while True:
            m = self.transport.recv()
            if type(m) is not dict:
                raise _ProtocolError("malformed message")
            if m.get("t") == "r" and m.get("i") == rid:
                return m
            if m.get("t") == "q":
                self.transport.send(self.handle(m))
                continue
            raise _ProtocolError("unexpected message")


# ---------------------------------------------------------------------------------------------
# the program's side (untrusted once the solution has run)


class _ChunkWriter:
    """One message as frames of about CHUNK bytes (see CHUNK)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.parts, self.size = fd, [], 0

    def write(self, text: str) -> None:
        data = text.encode()  # ASCII: json.dumps escapes the rest
        self.parts.append(data)
        self.size += len(data)
        if self.size >= CHUNK:
            self.flush(more=True)

    def flush(self, more: bool) -> None:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        _write_all(self.fd, _HDR.pack(len(data) | (MORE if more else 0)) + data)

    def abort(self) -> None:
        self.parts, self.size = [], 0
        _write_all(self.fd, _HDR.pack(ABORT))


def _dump(x) -> str:
    return json.dumps(x, separators=(",", ":"))


def _write_json(w: _ChunkWriter, x) -> None:
    """Write JSON-ready ``x`` (dicts, lists, scalars) piece by piece: long lists in batches, long
    strings in slices, so that the text of a large value never exists as a whole."""
    t = type(x)
    if t is list and len(x) > 16:
        w.write("[")
        batch: list = []
        first = True
        for v in x:
            tv = type(v)
            if (tv is list and len(v) > 16) or tv is dict or (tv is str and len(v) > _LONG_STR):
                if batch:
                    w.write(("" if first else ",") + _dump(batch)[1:-1])
                    batch, first = [], False
                if not first:
                    w.write(",")
                _write_json(w, v)
                first = False
            else:
                batch.append(v)
                if len(batch) >= _BATCH:
                    w.write(("" if first else ",") + _dump(batch)[1:-1])
                    batch, first = [], False
        if batch:
            w.write(("" if first else ",") + _dump(batch)[1:-1])
        w.write("]")
    elif t is list:
        w.write("[")
        for i, v in enumerate(x):
            if i:
                w.write(",")
            _write_json(w, v)
        w.write("]")
    elif t is dict:
        w.write("{")
        for i, (k, v) in enumerate(x.items()):
            w.write(("," if i else "") + _dump(str(k)) + ":")
            _write_json(w, v)
        w.write("}")
    elif t is str and len(x) > _LONG_STR:
        w.write('"')
        for i in range(0, len(x), _LONG_STR):
            w.write(_dump(x[i:i + _LONG_STR])[1:-1])
        w.write('"')
    else:
        w.write(_dump(x))


class _FdTransport:
    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def send(self, obj) -> None:
        w = _ChunkWriter(self.wfd)
        try:
            _write_json(w, obj)
        except (MemoryError, RecursionError) as exc:  # the message could not be written whole
            w.abort()
            obj = {"t": obj.get("t"), "i": obj.get("i"), "e": [type(exc).__name__, "", True]}
            w = _ChunkWriter(self.wfd)
            _write_json(w, obj)
        w.flush(more=False)

    def recv(self):
        m = _recv(self.rfd)
        if m is None:
            os._exit(0)  # the evaluator is done with us
        return m


_MUTABLE_TAGS = ("L", "D", "S", "BA", "Q", "OD", "CN")


class _Server:
    """Serves the evaluator's calls into the solution's namespace."""

    def __init__(self, ns: dict) -> None:
        self.ns = ns
        self.handles: dict[int, object] = {}
        self.codec = _Codec(self._ref, self._deref)
        self.peer = _Peer(_FdTransport(3, 4), self.handle)

    def _ref(self, obj):
        h = len(self.handles) + 1
        self.handles[h] = obj
        return ["H", h]

    def _deref(self, tag: str, ident: int):
        if tag == "H":
            return self.handles[ident]
        return self._stub(ident)

    def _stub(self, ident: int):
        def callback(*args, **kwargs):
            msg = {"o": "cb", "h": ident, "a": [self.enc(a) for a in args],
                   "k": [[k, self.enc(v)] for k, v in kwargs.items()]}
            resp = self.peer.request(msg)
            if "e" in resp:
                exc = getattr(builtins, str(resp["e"][0]), None)
                if isinstance(exc, type) and issubclass(exc, Exception):
                    raise exc(resp["e"][1])
                raise RuntimeError(f"{resp['e'][0]}: {resp['e'][1]}")
            return self.codec.dec(resp.get("v"))

        return callback

    def enc(self, value):
        try:
            return self.codec.enc(value)
        except (_Unencodable, RecursionError, TypeError, ValueError):
            return self._ref(value)

    def handle(self, m: dict) -> dict:
        resp = {"t": "r", "i": m.get("i")}
        try:
            resp.update(self._dispatch(m))
        except BaseException as exc:  # the evaluator decides what the exception means
            resp["e"] = [type(exc).__name__, _short(str(exc)), isinstance(exc, Exception)]
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        return resp

    def _dispatch(self, m: dict) -> dict:
        op = m.get("o")
        if op == "globals":
            out = []
            for name in m.get("n", []):
                if name in self.ns:
                    value = self.ns[name]
                    if isinstance(value, types.ModuleType):
                        out.append([name, "mod", [value.__name__, self._ref(value)[1]]])
                    else:
                        out.append([name, "val", self.enc(value)])
            return {"v": out}
        target = self.handles[m["h"]]
        if op == "call":
            raw = m.get("a", [])
            args = [self.codec.dec(a) for a in raw]
            kwargs = {str(k): self.codec.dec(v) for k, v in m.get("k", [])}
            value = target(*args, **kwargs)
            out = {"v": self.enc(value)}
            writeback = []
            for i, a in enumerate(raw):  # report in-place changes to mutable arguments
                if type(a) is list and a and a[0] in _MUTABLE_TAGS:
                    after = self.enc(args[i])
                    if after != a:
                        writeback.append([i, after])
            for k, v in m.get("k", []):
                if type(v) is list and v and v[0] in _MUTABLE_TAGS:
                    after = self.enc(kwargs[str(k)])
                    if after != v:
                        writeback.append([str(k), after])
            if writeback:
                out["w"] = writeback
            return out
        if op == "getattr":
            return {"v": self.enc(getattr(target, str(m["n"])))}
        if op == "iter":
            return {"v": self.enc(iter(target))}
        if op == "next":
            return {"v": self.enc(next(target))}
        if op == "len":
            return {"v": len(target)}
        if op == "getitem":
            return {"v": self.enc(target[self.codec.dec(m["k"])])}
        if op in ("repr", "str"):
            return {"v": _short((repr if op == "repr" else str)(target), 10_000)}
        raise ValueError(f"unknown operation {op!r}")

    def serve(self) -> None:
        t = self.peer.transport
        while True:
            m = t.recv()
            t.send(self.handle(m) if type(m) is dict else {"t": "r", "e": ["ProtocolError", "bad request", True]})


def _place_fds(fds: dict[int, int]) -> None:
    """Put ``fds`` (target -> current) in place and close every other descriptor."""
    high = {target: fcntl.fcntl(src, fcntl.F_DUPFD, 100) for target, src in fds.items()}
    for target, fd in high.items():
        os.dup2(fd, target)
    os.closerange(max(fds) + 1, 1 << 20)


def _run_filesystem(lim: dict, owner: int | None) -> None:
    """The run's only writable place: a fresh, size-capped tmpfs on /sandbox.

    /tmp and /dev/shm are links into it (set up once per worker), so all three share the quota.
    """
    inodes = 4096 + 64 * lim["disk_mb"]
    _mount("tmpfs", "/sandbox", "tmpfs", MS_NOSUID | MS_NODEV, f"size={lim['disk_mb']}m,nr_inodes={inodes},mode=0755")
    for path in (WORK, TMP, SHM):
        os.mkdir(path, 0o700)
        if owner is not None:
            os.chown(path, owner, owner)


def _drop_filesystem() -> None:
    """Detach the run's tmpfs: everything in it is freed, whatever its permissions."""
    _ok(_umount2_fn(b"/sandbox", MNT_DETACH), "umount /sandbox")


def _setup_worker(mode: str) -> None:
    """Once per worker: /dev/shm points into the run's tmpfs; in uid mode, /proc shows a program
    only its own processes (the zygote, in group 0, sees all: it needs to, to sweep)."""
    if mode == "none":
        return
    if not os.path.islink("/dev/shm"):
        os.rmdir("/dev/shm")
        os.symlink(SHM, "/dev/shm")
    if mode == "uid":
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        try:
            _mount("proc", "/proc", "proc", flags, "hidepid=invisible,gid=0")
        except OSError:
            _mount("proc", "/proc", "proc", flags, "hidepid=2,gid=0")


def _program(job: dict, cfg: dict, fds: dict[int, int]) -> None:
    """The child that becomes the untrusted program. Never returns.

    ``fds`` maps 0/1/2 (and 3/4, the call channel, with tests) to pipe ends, then the setup
    pipe, on which this prologue reports "1" (about to run the solution) or "0" and an error.
    In rootless mode this process is pid 1 of a new pid namespace and becomes the run's init
    (see ``_init``), the solution runs in its child; the last entry of ``fds`` is then the pipe
    on which the init reports the program's wait status.
    """
    mode, uid, lim = cfg["mode"], cfg["uid"], job["limits"]
    setup_w = max(fds) - (mode == "pidns")
    try:
        os.setsid()
        _place_fds(fds)
        if mode == "uid" and _SECCOMP is None:
            _unshare(CLONE_NEWIPC)  # no seccomp filter to deny System V IPC: a namespace per run
        elif mode == "pidns":
            # pid 1 of the run's pid namespace: the kernel drops signals sent to it from inside
            # the namespace unless it handles them, so the program runs as its child, not as pid 1
            status_w = setup_w + 1
            _unshare(CLONE_NEWNS | CLONE_NEWIPC)
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            _run_filesystem(lim, None)
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # no handler: nothing from inside reaches it
            _prctl(PR_SET_DUMPABLE, 0)  # its memory and descriptors are out of the program's reach
            # a process that exits at once and stays a zombie till the end, so that kill(-1) finds
            # a process as in uid mode (ProcessLookupError otherwise); it shares this memory till it
            # exits, on a stack of its own; not waiting for it (CLONE_VFORK) saves a scheduling delay
            if _clone_fn(_EXIT_ADDR, _ZOMBIE_STACK_TOP, CLONE_VM | signal.SIGCHLD, None) < 0:
                _ok(-1, "clone")
            child = os.fork()
            if child:
                _init(child, status_w)
            os.close(status_w)
            os.setsid()  # a session and process group of its own, as in uid mode
            signal.signal(signal.SIGINT, signal.default_int_handler)
        workdir = job["workdir"]
        mem = lim["memory_mb"] << 20
        cpu = max(1, math.ceil(lim["cpu_s"]))
        for res, value in (
            (resource.RLIMIT_AS, (mem, mem)),
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_FSIZE, (lim["max_file_mb"] << 20,) * 2),
            (resource.RLIMIT_NOFILE, (lim["max_open_files"],) * 2),
            (resource.RLIMIT_CORE, (0, 0)),
            (resource.RLIMIT_MEMLOCK, (0, 0)),
        ):
            resource.setrlimit(res, value)
        if mode == "uid":
            # processes and threads, counted per uid: each worker's programs have a uid of their own
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["max_processes"],) * 2)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)  # clears the permitted, effective and ambient capabilities
            _capset(())  # and the inheritable ones
        elif mode == "pidns":
            # counted per uid of the worker's user namespace, which the harness shares: bwrap's
            # init, the zygote, the run's init and its zombie, with tests the evaluator
            harness = 5 if job.get("has_tests") else 4
            resource.setrlimit(resource.RLIMIT_NPROC, (lim["max_processes"] + harness,) * 2)
            _prctl(PR_SET_SECUREBITS, 0x2F)  # NOROOT | NO_SETUID_FIXUP, locked
            _capset(())
        os.chdir(workdir)  # after the uid change: the folder is the program's, mode 0700
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if mode != "none" and _SECCOMP is not None:
            _install_seccomp()
        if mode == "none":  # isolated, the zygote's environment already is the program's (bwrap sets it)
            os.environ.clear()
            os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
                               "LANG": "C.UTF-8"})
        path = os.path.join(workdir, "solution.py")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:  # plain system calls: a text file object would cost the prologue a few hundred microseconds
            _write_all(fd, job["source"].encode("utf-8"))
        finally:
            os.close(fd)
        # sys.stdin/stdout/stderr are the zygote's, on fds 0, 1 and 2, never used there: now the pipes
        main = types.ModuleType("__main__")
        main.__file__ = path
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        sys.argv = [path]
        sys.path.insert(0, workdir)
        os.write(setup_w, b"1")
        os.close(setup_w)
    except BaseException as exc:
        try:
            os.write(setup_w, b"0" + f"{type(exc).__name__}: {exc}".encode()[:2000])
        finally:
            os._exit(70)
    serve, source = bool(job.get("has_tests")), job["source"]
    job = cfg = fds = None  # nothing of the harness's state is needed from here on
    code = _run_solution(main, path, source, serve)
    if code is None:  # with tests: the solution loaded; serve the evaluator
        try:
            server = _Server(main.__dict__)
            server.peer.transport.send({"t": "ready"})
            server.serve()
        finally:  # whatever happened (MemoryError, say), never back into the zygote's code
            os._exit(EXIT_MEMORY if isinstance(sys.exc_info()[1], MemoryError) else 1)
    _finish(code)


def _init(child: int, status_w: int) -> None:
    """Rootless mode, pid 1 of the run's pid namespace: wait for the program, hand its wait status
    to the zygote (which reports it as the program's), exit; the kernel then kills and reaps
    whatever is left in the namespace (orphans are reaped only then, as in uid mode, where the
    zygote reaps them after the run). The zygote waits for this process, so the program's
    resource usage, which this process collects, is counted."""
    try:
        os.closerange(0, status_w)
        os.closerange(status_w + 1, 1 << 20)
        _, status = os.waitpid(child, 0)
        os.write(status_w, struct.pack("!i", status))
    finally:
        os._exit(0)


def _run_solution(main: types.ModuleType, path: str, source: str, serve: bool) -> int | None:
    """Run the solution as ``__main__``; the exit code if the program ended, None to go on."""
    try:
        exec(compile(source, path, "exec", dont_inherit=True), main.__dict__)
    except SystemExit as exc:
        if serve:
            return 1  # exiting before the tests ran is a failure, whatever the status
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code & 0xFF
        try:
            print(exc.code, file=sys.stderr)
        except BaseException:
            pass
        return 1
    except BaseException as exc:
        _print_exc(exc)
        return EXIT_MEMORY if isinstance(exc, MemoryError) else 1
    return None if serve else 0


def _print_exc(exc: BaseException) -> None:
    import traceback

    try:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != sys.argv[0]:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
    except BaseException:
        pass


def _finish(code: int) -> None:
    """Exit the program like the interpreter would: join threads, run atexit, flush."""
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)


# ---------------------------------------------------------------------------------------------
# the evaluator: runs the tests, in its own process, calling into the program


class _Stop(BaseException):
    """The call channel is unusable: deadline, the program is gone, or it broke the protocol."""


class ValueTooLarge(Exception):
    """A message of the program (a value the tests asked for) is larger than the run may transfer."""

    _from_program = True  # the message is the evaluator's own, about the program's value


class _PipeTransport:
    """The evaluator's end of the call channel: every wait is bounded by the run's deadline, every
    message from the program by ``max_bytes`` (the run's memory limit: the program had to hold the
    value itself). A larger message is read to its end and dropped: the request fails with
    :class:`ValueTooLarge`, and the channel stays usable."""

    def __init__(self, rfd: int, wfd: int, deadline: float, max_bytes: int = 512 << 20) -> None:
        self.rfd, self.wfd, self.deadline, self.max_bytes = rfd, wfd, deadline, max_bytes
        self.buf = bytearray()
        self.stop: str | None = None  # timeout | gone | protocol
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)

    def _fail(self, why: str):
        self.stop = self.stop or why
        raise _Stop(self.stop)

    def _wait(self, r: list, w: list) -> bool:
        left = self.deadline - time.monotonic()
        if left <= 0:
            self._fail("timeout")
        rr, ww, _ = select.select(r, w, [], left)
        return bool(rr or ww)

    def send(self, obj) -> None:
        if self.stop:
            raise _Stop(self.stop)
        data = memoryview(_dumps(obj))
        while data:
            if self._wait([], [self.wfd]):
                try:
                    data = data[os.write(self.wfd, data[:1 << 16]):]
                except BlockingIOError:
                    pass
                except OSError:
                    self._fail("gone")

    def _frame(self) -> tuple[int, bytes]:
        """The next frame: (its header, its payload)."""
        while True:
            if len(self.buf) >= 4:
                head = _HDR.unpack_from(self.buf)[0]
                n = 0 if head == ABORT else head & ~MORE
                if n > CHUNK << 4:  # no writer makes a frame this large
                    self._fail("protocol")
                if len(self.buf) >= 4 + n:
                    body = bytes(self.buf[4:4 + n])
                    del self.buf[:4 + n]
                    return head, body
            if self._wait([self.rfd], []):
                try:
                    chunk = os.read(self.rfd, CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    self._fail("gone")
                self.buf += chunk

    def recv(self):
        if self.stop:
            raise _Stop(self.stop)
        parts: list[bytes] = []
        total = 0
        while True:
            head, body = self._frame()
            if head == ABORT:
                parts, total = [], 0
                continue
            total += len(body)
            if total <= self.max_bytes:
                parts.append(body)
            else:
                parts = []  # read to its end, kept no longer
            if head & MORE:
                continue
            if total > self.max_bytes:
                raise ValueTooLarge(f"a value of the program takes over {self.max_bytes >> 20} MiB as data, more than "
                                    f"the run's memory limit; it cannot be handed to the tests")
            try:
                return json.loads(b"".join(parts))
            except (ValueError, RecursionError):
                self._fail("protocol")


class ProgramError(Exception):
    """An exception raised inside the program, re-raised on the evaluator's side."""


class ProgramAbort(BaseException):
    """The program raised a BaseException that is not an Exception (SystemExit, ...)."""


_BUILTIN_EXC = {name: obj for name, obj in vars(builtins).items()
                if isinstance(obj, type) and issubclass(obj, Exception) and name != "MemoryError"}
_BUILTIN_NAMES = frozenset(dir(builtins))


class _Remote:
    """Evaluator-side stand-in for an object that lives in the program's process.

    Calls, attribute reads, iteration, ``len`` and indexing are forwarded; what comes back is
    plain data (compared on this side) or another stand-in. Truth value and equality are never
    delegated to the program's objects: ``bool()`` raises, ``==`` is identity.
    """

    __slots__ = ("_h",)

    def __init__(self, h: int) -> None:
        object.__setattr__(self, "_h", h)

    def __call__(self, *args, **kwargs):
        return _EVAL.call(self._h, args, kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _EVAL.op("getattr", self._h, n=name)

    def __setattr__(self, name, value):
        raise AttributeError("objects of the program are read-only here")

    def __iter__(self):
        return _EVAL.op("iter", self._h)

    def __next__(self):
        return _EVAL.op("next", self._h)

    def __len__(self) -> int:
        n = _EVAL.op("len", self._h)
        if type(n) is not int or n < 0:
            raise TypeError("bad length")
        return n

    def __getitem__(self, key):
        return _EVAL.op("getitem", self._h, k=_EVAL.codec.enc(key))

    def __repr__(self) -> str:
        text = _EVAL.op("repr", self._h)
        return text if type(text) is str else "<program object>"

    def __str__(self) -> str:
        text = _EVAL.op("str", self._h)
        return text if type(text) is str else "<program object>"

    def __bool__(self) -> bool:
        raise TypeError("the truth value of an object of the program is not taken on trust")

    def __eq__(self, other) -> bool:
        return type(other) is _Remote and other._h == self._h

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(("_Remote", self._h))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce_ex__(self, protocol):
        raise TypeError("objects of the program cannot be pickled")


class _Evaluator:
    """Talks to the program's :class:`_Server`: calls, and callbacks it makes into the tests."""

    def __init__(self, transport: _PipeTransport) -> None:
        self.transport = transport
        self.callbacks: dict[int, object] = {}
        self.codec = _Codec(self._ref, self._deref)
        self.peer = _Peer(transport, self._handle)
        self.memory_error = False

    def _ref(self, obj):
        if type(obj) is _Remote:
            return ["H", obj._h]
        if callable(obj):
            ident = len(self.callbacks) + 1
            self.callbacks[ident] = obj
            return ["CB", ident]
        raise TypeError(f"a {type(obj).__name__} cannot be passed to the program")

    def _deref(self, tag: str, ident: int):
        if tag == "H":
            return _Remote(ident)
        if ident not in self.callbacks:
            raise _ProtocolError("unknown callback")
        return self.callbacks[ident]

    def _handle(self, m: dict) -> dict:
        resp = {"t": "r", "i": m.get("i")}
        if m.get("o") != "cb" or type(m.get("h")) is not int or m["h"] not in self.callbacks:
            raise _ProtocolError("unexpected request from the program")
        try:
            args = [self.codec.dec(a) for a in self._list(m.get("a"))]
            kwargs = {str(p[0]): self.codec.dec(p[1]) for p in self._list(m.get("k")) if self._kwarg(p)}
            resp["v"] = self.codec.enc(self.callbacks[m["h"]](*args, **kwargs))
        except (_Stop, _ProtocolError):
            raise
        except BaseException as exc:
            resp["e"] = [type(exc).__name__, ""]
        return resp

    @staticmethod
    def _list(x):
        if x is None:
            return []
        if type(x) is not list:
            raise _ProtocolError("malformed message")
        return x

    @staticmethod
    def _kwarg(p) -> bool:
        if type(p) is not list or len(p) != 2 or type(p[0]) is not str:
            raise _ProtocolError("malformed keyword argument")
        return True

    def _result(self, resp: dict):
        if "e" in resp:
            err = resp["e"]
            if type(err) is not list or len(err) < 2:
                raise _ProtocolError("malformed exception")
            name, msg = str(err[0])[:200], _short(str(err[1]), 500)
            if name == "MemoryError":
                self.memory_error = True
            cls = _BUILTIN_EXC.get(name)
            exc: BaseException
            if cls is not None:
                try:
                    exc = cls(msg)
                except Exception:
                    exc = ProgramError(f"{name}: {msg}")
            elif len(err) < 3 or err[2] is True:
                exc = ProgramError(f"{name}: {msg}")
            else:
                exc = ProgramAbort(f"{name}: {msg}")
            exc._from_program = True  # its message is the program's, not the tests'
            raise exc
        if "v" not in resp:
            raise _ProtocolError("malformed response")
        return self.codec.dec(resp["v"])

    def request(self, msg: dict) -> dict:
        try:
            return self.peer.request(msg)
        except ValueTooLarge:
            self.memory_error = True
            raise

    def op(self, op: str, h: int, **fields):
        return self._result(self.request({"o": op, "h": h, **fields}))

    def call(self, h: int, args: tuple, kwargs: dict):
        msg = {"o": "call", "h": h, "a": [self.codec.enc(a) for a in args],
               "k": [[k, self.codec.enc(v)] for k, v in kwargs.items()]}
        resp = self.request(msg)
        value = self._result(resp)
        for item in self._list(resp.get("w")):  # in-place changes the program made to arguments
            if type(item) is not list or len(item) != 2:
                raise _ProtocolError("malformed write-back")
            key, raw = item
            target = args[key] if type(key) is int and 0 <= key < len(args) else kwargs.get(key)
            _apply_writeback(target, self.codec.dec(raw))
        return value

    def namespace(self, names: list[str], entry_point: str | None, module_like: set[str]) -> dict:
        """The tests' globals: what they use of the solution, as stand-ins or plain values."""
        ns: dict = {"__name__": "__main__", "__builtins__": builtins}
        resp = self.request({"o": "globals", "n": names})
        for item in self._list(resp.get("v")):
            if type(item) is not list or len(item) != 3 or type(item[0]) is not str:
                raise _ProtocolError("malformed globals")
            name, kind, payload = item
            if name in _BUILTIN_NAMES and name != entry_point:
                continue  # a solution cannot redefine len/abs/... for the tests
            if kind == "mod" and type(payload) is list and len(payload) == 2 and type(payload[1]) is int:
                ns[name] = _import_genuine(str(payload[0])) or _Remote(payload[1])
            elif kind == "val":
                ns[name] = self.codec.dec(payload)
            else:
                raise _ProtocolError("malformed globals")
        for name in module_like & sys.stdlib_module_names:
            if not isinstance(ns.get(name, builtins), types.ModuleType):
                # the tests use ``name.attr`` on a name the solution did not bind to a module
                # (``math``, say, relying on the solution's import): only the genuine module will do
                module = _import_genuine(name)
                if module is not None:
                    ns[name] = module
        return ns


def _import_genuine(name: str):
    if name in ("antigravity", "this", "__hello__", "__phello__") or name.split(".")[0] not in sys.stdlib_module_names:
        return None
    try:
        return importlib.import_module(name)
    except Exception:
        return None


def _apply_writeback(target, new) -> None:
    if isinstance(target, (list, bytearray)) and type(new) is type(target):
        target[:] = new
    elif isinstance(target, dict) and isinstance(new, dict):
        target.clear()
        target.update(new)
    elif isinstance(target, set) and isinstance(new, set):
        target.clear()
        target.update(new)
    elif isinstance(target, collections.deque) and isinstance(new, collections.deque):
        target.clear()
        target.extend(new)


_EVAL: _Evaluator  # the evaluator of this process, used by _Remote


def split_tests(src: str, entry_point: str | None) -> list[tuple[str, object]]:
    """Units of work: ("setup", node), ("test", node) or ("bind", argument name).

    Top-level asserts are individual tests, other statements set up. With an entry point and
    a HumanEval-style ``def check(candidate)``, the asserts in check's body are the tests,
    ``candidate`` being bound to the entry point. Without any assert at the top level, the
    whole code is one test. (The host uses this function too, to label the results.)
    """
    tree = ast.parse(src, "<tests>")
    body = tree.body
    check = None
    if entry_point:
        for node in body:
            if isinstance(node, ast.FunctionDef) and node.name == "check" and node.args.args:
                check = node
    if check is not None and any(isinstance(n, ast.Assert) for n in check.body):
        units: list[tuple[str, object]] = []
        for node in body:
            if node is check or _calls_check(node):
                continue
            units.append(("test" if isinstance(node, ast.Assert) else "setup", node))
        units.append(("bind", check.args.args[0].arg))
        for node in check.body:
            if isinstance(node, ast.Return):
                break
            units.append(("test" if isinstance(node, ast.Assert) else "setup", node))
        return units
    if check is not None:  # a check without top-level asserts: one test, check(entry_point)
        call = ast.Expr(ast.Call(ast.Name("check", ast.Load()), [ast.Name(entry_point, ast.Load())], []))
        body = [n for n in body if not _calls_check(n)] + [ast.fix_missing_locations(ast.copy_location(call, check))]
        return [("test", ast.Module(body=body, type_ignores=[]))]
    if any(isinstance(n, ast.Assert) for n in body):
        return [("test" if isinstance(n, ast.Assert) else "setup", n) for n in body]
    return [("test", tree)]


def _module_like(tests: str) -> set[str]:
    """Names the tests use as ``name.attribute``."""
    return {n.value.id for n in ast.walk(ast.parse(tests)) if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)}


def _calls_check(node) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "check")


def _error_text(exc: BaseException) -> str:
    """What the report may say about a failure: the program's own messages, the tests' kinds.

    Messages raised by test code (``assert x == 5, f"wanted {y}"``) could carry expected values,
    and the report passes through the zygote, whose memory later programs inherit.
    """
    name = type(exc).__name__
    if getattr(exc, "_from_program", False) or isinstance(exc, NameError):
        return _short(f"{name}: {exc}", 500)
    return name


def _evaluate(transport: _PipeTransport, tests: str, entry_point: str | None) -> tuple[list, bool]:
    """Run the tests against the program: ([[kind, ok, error], ...] per unit, memory error seen)."""
    global _EVAL
    units = split_tests(tests, entry_point)
    names = sorted({n.id for n in ast.walk(ast.parse(tests)) if isinstance(n, ast.Name)} | {entry_point or "check"})
    out: list = []
    _EVAL = ev = _Evaluator(transport)
    ns: dict = {}
    unavailable: str | None = None
    try:
        first = transport.recv()  # the program's "ready": its solution ran to the end
        if type(first) is not dict or first.get("t") != "ready":
            raise _ProtocolError("expected ready")
        ns = ev.namespace(names, entry_point, _module_like(tests))
    except (_Stop, _ProtocolError) as exc:
        transport.stop = transport.stop or ("protocol" if isinstance(exc, _ProtocolError) else "gone")
    except ValueTooLarge as exc:  # a global the tests use: no test can run without it
        unavailable = _error_text(exc)
    for kind, node in units:
        if transport.stop is not None or unavailable is not None:
            out.append([kind, False, unavailable or f"not run ({transport.stop})"])
            continue
        error = None
        try:
            if kind == "bind":
                if entry_point not in ns:
                    raise NameError(f"the solution does not define {entry_point!r}")
                ns[node] = ns[entry_point]
            else:
                mod = node if isinstance(node, ast.Module) else ast.Module(body=[node], type_ignores=[])
                exec(compile(mod, "<tests>", "exec", dont_inherit=True), ns)
        except (_Stop, _ProtocolError) as exc:
            transport.stop = transport.stop or ("protocol" if isinstance(exc, _ProtocolError) else "gone")
        except BaseException as exc:  # whatever the test raised, it did not pass
            error = _error_text(exc)
        if transport.stop is not None and error is None:
            error = f"stopped ({transport.stop})"  # the channel broke inside the unit
        out.append([kind, error is None, error or ""])
    return out, ev.memory_error


def _evaluator(ctl_in: int, rpc_r: int, rpc_w: int, res_w: int, deadline: float, max_bytes: int) -> None:
    """The evaluator process: reads the tests (only now), runs them, reports to the zygote."""
    try:
        null = os.open("/dev/null", os.O_RDWR)
        fds = {0: null, 1: null, 2: null, 3: ctl_in, 4: rpc_r, 5: rpc_w, 6: res_w}
        _place_fds(fds)
        ctl_in, rpc_r, rpc_w, res_w = 3, 4, 5, 6
        frame_b = _recv(ctl_in)
        os.close(ctl_in)
        os.write(res_w, b"B")
        if _has_caps():
            _capset(())  # the tests need no privilege
        tests, entry_point = frame_b["tests"], frame_b.get("entry_point")
        try:
            units, memory = _evaluate(_PipeTransport(rpc_r, rpc_w, deadline, max_bytes), tests, entry_point)
            report = {"units": units, "memory": memory}
        except SyntaxError as exc:
            report = {"error": f"the tests do not parse: {exc.msg} (line {exc.lineno})"}
        _send(res_w, report)
    finally:
        os._exit(0)


def _has_caps() -> bool:
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("CapEff:") and int(line.split()[1], 16) for line in f)
    except OSError:
        return True


# ---------------------------------------------------------------------------------------------
# the zygote's side of a run: supervision


class _Watch:
    """Everything the zygote waits on during a run: exit, output, stdin, the evaluator's report."""

    def __init__(self, pid: int, deadline: float, out_fd: int, err_fd: int, cap: int, in_fd: int | None,
                 stdin: bytes, aux_fd: int | None) -> None:
        self.pid, self.deadline, self.cap = pid, deadline, cap
        self.streams = {out_fd: bytearray(), err_fd: bytearray()}
        self.out_fd, self.err_fd, self.aux_fd = out_fd, err_fd, aux_fd
        self.open_reads = {out_fd, err_fd} | ({aux_fd} if aux_fd is not None else set())
        self.aux = bytearray()
        self.in_fd, self.stdin = in_fd, memoryview(stdin)
        self.stop: str | None = None  # timeout | output_limit
        self.exited = False
        self.wait_status = 0
        self.rusage = None
        self.truncated = False
        for fd in self.open_reads | ({in_fd} if in_fd is not None else set()):
            os.set_blocking(fd, False)
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.pidfd = None
        if in_fd is not None and not self.stdin:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self.in_fd is not None:
            os.close(self.in_fd)
            self.in_fd = None

    def halt(self, why: str | None) -> None:
        if why and self.stop is None:
            self.stop = why
        if not self.exited:
            try:
                os.kill(self.pid, signal.SIGKILL)  # rootless: the run's init, its namespace with it
            except OSError:
                pass

    def _reap(self, block: bool) -> None:
        if not self.exited:
            pid, status, rusage = os.wait4(self.pid, 0 if block else os.WNOHANG)
            if pid:
                self.exited, self.wait_status, self.rusage = True, status, rusage
                if self.pidfd is not None:
                    os.close(self.pidfd)
                    self.pidfd = None

    def poll(self, until: float) -> None:
        now = time.monotonic()
        if now >= self.deadline and not self.exited:
            self.halt("timeout")
        timeout = max(0.0, (until if self.exited else min(until, self.deadline)) - now)
        rlist = list(self.open_reads)
        if self.pidfd is not None:
            rlist.append(self.pidfd)
        elif not self.exited:
            timeout = min(timeout, 0.01)
        wlist = [self.in_fd] if self.in_fd is not None and self.stdin else []
        if not rlist and not wlist:
            self._reap(True)
            return
        r, w, _ = select.select(rlist, wlist, [], timeout)
        for fd in r:
            if fd == self.pidfd:
                self._reap(False)
            else:
                self._read(fd)
        if w:
            self._write()
        if self.pidfd is None:
            self._reap(False)

    def _read(self, fd: int) -> None:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self.open_reads.discard(fd)
            return
        if fd == self.aux_fd:
            self.aux += chunk
            return
        buf = self.streams[fd]
        room = self.cap - len(buf)
        buf += chunk[:room]
        if len(chunk) > room:
            self.truncated = True
            self.halt("output_limit")

    def _write(self) -> None:
        try:
            n = os.write(self.in_fd, self.stdin[:1 << 16])
            self.stdin = self.stdin[n:]
            if not self.stdin:
                self._close_stdin()
        except BlockingIOError:
            pass
        except OSError:  # the program closed its stdin
            self.stdin = memoryview(b"")
            self._close_stdin()

    def wait_program(self) -> None:
        """Until the program's main process exited (killed at the deadline), reading its output."""
        while not self.exited:
            self.poll(time.monotonic() + 0.5)

    def drain(self, until: float) -> None:
        """Read the rest of the output, once nothing can write any more."""
        while self.open_reads - {self.aux_fd} and time.monotonic() < until:
            self.poll(until)

    def wait_aux(self, until: float) -> bool:
        """Until the evaluator closed its report pipe; False if ``until`` passed first."""
        while self.aux_fd in self.open_reads:
            if time.monotonic() >= until:
                return False
            self.poll(until)
        return True

    def output(self, fd: int) -> str:
        return bytes(self.streams[fd]).decode("utf-8", errors="replace")


def _read_setup(fd: int, deadline: float) -> str | None:
    """Wait for the prologue: None if it succeeded, else the error."""
    data = b""
    while data[:1] != b"1":
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            os.close(fd)
            return "the program's setup timed out"
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    if data[:1] == b"1":
        return None
    return data[1:].decode(errors="replace") or "the program's setup died"


def _procs_of(uid: int) -> tuple[list[int], list[int]]:
    """(live, zombie) pids whose real uid is ``uid``."""
    live, zombies = [], []
    ours = {"1", str(os.getpid())}  # bwrap's init and this zygote
    for name in os.listdir("/proc"):
        if not name.isdigit() or name in ours:
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
        if int(fields.get(b"Uid", b"-1 ").split()[0]) != uid:
            continue
        (zombies if fields.get(b"State", b"").strip().startswith(b"Z") else live).append(int(name))
    return live, zombies


def _sweep_uid(uid: int) -> None:
    """Kill every process of ``uid`` (the program's leftovers: daemons, double forks, ...)."""
    for attempt in range(1000):
        live, zombies = _procs_of(uid)
        if zombies:
            _reap()  # orphans come to us (subreaper)
        if not live:
            if not zombies:
                return
            time.sleep(0.001)
            continue
        pid = os.fork()
        if pid == 0:  # kill(-1) as that uid: one pass the kernel makes atomic with respect to fork()
            try:
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        _reap()
        if attempt:
            time.sleep(0.001)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _discard_frame(fd: int) -> None:
    """Read and wipe one frame nobody consumed (the tests of a run whose evaluator died early)."""
    head = _read_exact(fd, 4)
    if head is None:
        return
    left = _HDR.unpack(head)[0]
    buf = bytearray(1 << 16)
    while left > 0:
        n = os.readv(fd, [memoryview(buf)[:min(left, len(buf))]])
        if n == 0:
            break
        left -= n
    buf[:] = bytes(len(buf))


def _close_all(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


def _fork_program(job: dict, cfg: dict, fds: dict[int, int]) -> int:
    """Fork the program process; in rootless mode, as pid 1 of a new pid namespace."""
    if cfg["mode"] != "pidns":
        pid = os.fork()
        if pid == 0:
            _program(job, cfg, fds)
        return pid
    _unshare(CLONE_NEWPID)  # the next child is pid 1 of a new pid namespace
    try:
        pid = os.fork()
        if pid == 0:
            _program(job, cfg, fds)
    finally:
        # later children (the evaluator, the next run's init) are not in that namespace; a
        # zygote that cannot go back cannot run anything safely
        if _setns_fn(_PIDNS_FD, CLONE_NEWPID) != 0:
            os._exit(1)
    return pid


def _run_job(job: dict, cfg: dict, ctl_in: int) -> dict:
    """One run: fork the program (and, with tests, the evaluator), supervise, clean up, report."""
    lim, mode, has_tests = job["limits"], cfg["mode"], bool(job.get("has_tests"))
    if mode == "none":
        import tempfile

        job["workdir"] = tempfile.mkdtemp(prefix="starloop-run-")
    else:
        job["workdir"] = WORK
    if mode == "uid":
        _run_filesystem(lim, cfg["uid"])
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    setup_r, setup_w = os.pipe()
    fds = {0: in_r, 1: out_w, 2: err_w}
    rpc = res_r = res_w = None
    if has_tests:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        res_r, res_w = os.pipe()
        fds.update({3: req_r, 4: resp_w})
        rpc = (resp_r, req_w)
    fds[max(fds) + 1] = setup_w
    status_r = None
    if mode == "pidns":  # the run's init reports the program's wait status on it
        status_r, fds[max(fds) + 1] = os.pipe()
    start = time.monotonic()
    deadline = start + lim["wall_s"]
    pid = _fork_program(job, cfg, fds)
    _close_all(*fds.values())
    epid = None
    b_consumed = not has_tests
    if has_tests:
        epid = os.fork()
        if epid == 0:
            _evaluator(ctl_in, rpc[0], rpc[1], res_w, deadline, lim["memory_mb"] << 20)
        _close_all(rpc[0], rpc[1], res_w)
    watch = _Watch(pid, deadline, out_r, err_r, lim["max_output_bytes"], in_w, job.get("stdin", "").encode(),
                   res_r)
    problem = _read_setup(setup_r, deadline)
    report = None
    if problem is not None:
        watch.halt(None)
    if has_tests:
        # the evaluator's waits end at the deadline; its own code gets a little longer
        if not watch.wait_aux(deadline + 2.0):
            os.kill(epid, signal.SIGKILL)
            watch.stop = watch.stop or "timeout"
        watch.halt(None)  # the tests are done: the program has nothing left to do
        os.waitpid(epid, 0)
        while watch.aux_fd in watch.open_reads:  # what it wrote before exiting
            watch._read(watch.aux_fd)
        b_consumed = watch.aux[:1] == b"B"
        report = _parse_report(bytes(watch.aux[1:])) if b_consumed else None
    watch.wait_program()
    wall = time.monotonic() - start
    if status_r is not None:  # rootless: the program's wait status (none if the init was killed)
        data = os.read(status_r, 4)
        os.close(status_r)
        if len(data) == 4:
            watch.wait_status = struct.unpack("!i", data)[0]
    # leftovers: in uid mode whatever runs under the program's uid; in rootless mode they died
    # with the program's pid namespace; unisolated, its process group is all we can reach
    if mode == "uid":
        _sweep_uid(cfg["uid"])
        _drop_filesystem()
    elif mode == "none":
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    watch.drain(until=time.monotonic() + 1.0)
    if mode == "none":
        import shutil

        shutil.rmtree(job["workdir"], ignore_errors=True)
    _close_all(out_r, err_r, res_r, watch.in_fd)
    if not b_consumed:
        _discard_frame(ctl_in)
    result = {"id": job.get("id"), "stdout": watch.output(out_r), "stderr": watch.output(err_r), "wall_s": wall,
              "truncated": watch.truncated}
    if problem is not None:
        result.update(status="error", detail=f"sandbox setup failed: {problem}", cpu_s=0.0)
        return result
    result.update(_outcome(watch, lim, report if has_tests else None, has_tests))
    return result


def _outcome(watch: _Watch, lim: dict, report, has_tests: bool) -> dict:
    """Status, exit code, signal, CPU time and per-test units of a finished run."""
    code = os.waitstatus_to_exitcode(watch.wait_status)
    sig = -code if code < 0 else None
    ru = watch.rusage
    cpu = (ru.ru_utime + ru.ru_stime) if ru is not None else 0.0
    cpu_hit = sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= math.ceil(lim["cpu_s"]))
    out: dict = {"cpu_s": cpu, "exit_code": None if sig else code, "signal": sig}
    if has_tests:
        out.update(exit_code=None, signal=None)  # the program was stopped after the tests
        units = report.get("units") if isinstance(report, dict) else None
        out["units"] = units
        all_passed = any(u[0] == "test" for u in units or ()) and all(u[1] for u in units)
        if watch.stop:
            status = watch.stop
        elif isinstance(report, dict) and "error" in report:
            status, out["detail"] = "error", str(report["error"])
        elif units is None:
            status, out["detail"] = "error", "the test evaluator failed"
        elif all_passed:
            status = "passed"
        elif cpu_hit:
            status = "timeout"
        elif report.get("memory") or code == EXIT_MEMORY:
            status = "memory_limit"
        else:
            status = "failed"
    elif watch.stop:
        status = watch.stop
    elif cpu_hit:
        status = "timeout"
    elif code == EXIT_MEMORY:
        status = "memory_limit"
    elif sig is not None:
        status = "killed"
    else:
        status = "passed" if code == 0 else "failed"
    if status == "timeout" and not out.get("detail"):
        out["detail"] = "cpu time limit" if cpu_hit else "wall clock limit"
    out["status"] = status
    return out


def _parse_report(data: bytes):
    if len(data) < 4 or len(data) < 4 + _HDR.unpack_from(data)[0]:
        return None
    try:
        return json.loads(data[4:4 + _HDR.unpack_from(data)[0]])
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# the zygote

# modules solutions commonly import, imported once here instead of in every program (random
# reseeds itself in every forked child)
PRELOAD = ("typing", "re", "math", "collections", "itertools", "functools", "heapq", "bisect", "string",
           "random", "copy", "operator", "fractions", "decimal", "traceback", "atexit")


def main() -> None:
    cfg = json.loads(sys.argv[1])
    # started with -S: no .pth file of the interpreter's installation runs here or in programs,
    # but its installed packages stay importable
    import site

    sys.path.extend(p for p in site.getsitepackages() if os.path.isdir(p) and p not in sys.path)
    for name in cfg.get("preload", PRELOAD):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    if cfg["mode"] == "pidns":
        global _PIDNS_FD
        _PIDNS_FD = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    if cfg["mode"] != "none":
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        os.environ["PWD"] = WORK  # where every program starts
    _setup_worker(cfg["mode"])
    # the control channel moves off 0/1 so that nothing printing can write into it
    ctl_in, ctl_out = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    gc.collect()
    gc.freeze()  # fewer copy-on-write faults in every fork
    # hand back the heap's free pages (compiling this file left megabytes of them): every page
    # still mapped is copied into each fork's page tables and torn down when it exits
    _libc_fn("malloc_trim", _c_int, ctypes.c_size_t)(0)
    _send(ctl_out, {"t": "hello", "pid": os.getpid(), "python": sys.version.split()[0],
                    "seccomp": _SECCOMP is not None})
    while True:
        job = _recv(ctl_in)
        if job is None:
            return
        try:
            result = _run_job(job, cfg, ctl_in)
        except Exception as exc:
            result = {"id": job.get("id"), "status": "error", "detail": f"sandbox: {type(exc).__name__}: {exc}"}
            if cfg["mode"] == "uid":
                _sweep_uid(cfg["uid"])
                if os.path.ismount("/sandbox"):
                    _drop_filesystem()
        _send(ctl_out, result)
        _reap()


if __name__ == "__main__":
    main()
