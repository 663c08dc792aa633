"""Adversarial programs against the sandbox. Each test checks the host afterwards.

Network tests only ever target listeners they start themselves on loopback (127.0.0.1, ::1)
or Unix sockets they create.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import platform
import signal
import socket
import struct
import sys
import threading
import time
import uuid

import psutil
import pytest

from starloop.sandbox import Limits, Program, SandboxPool, _zygote, select_backend

pytestmark = pytest.mark.skipif(not select_backend().isolated, reason="no sandbox backend here (install bubblewrap)")

LIM = Limits(wall_s=2.0, cpu_s=2.0, max_processes=16, disk_mb=32, max_output_bytes=64 * 1024)
WRONG_ADD = "def add(a, b):\n    return 0\n"
ADD_TESTS = "assert add(1, 2) == 3\nassert add(2, 3) == 5\nassert add(10, 20) == 30\n"


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(2) as p:
        p.run_many([Program("import time; time.sleep(0.2)")] * 2, workers=2)  # start both workers
        yield p


def marker() -> str:
    return f"starloop-adv-{uuid.uuid4().hex}"


def processes_with(text: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if text in " ".join(p.info["cmdline"] or ()):
                found.append(p)
    return found


def worker_uid_processes(pool: SandboxPool) -> list[psutil.Process]:
    uids = {w.uid for w in pool._workers}
    found = []
    for p in psutil.process_iter(["uids", "status"]):
        with contextlib.suppress(psutil.Error):
            if p.info["uids"].real in uids and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


def assert_host_clean(pool: SandboxPool, mark: str | None = None) -> None:
    """Nothing the program started is still running on the host."""
    deadline = time.monotonic() + 1.0
    while True:
        left = (processes_with(mark) if mark else []) + (worker_uid_processes(pool) if os.geteuid() == 0 else [])
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, [p.cmdline() for p in left if p.is_running()]
    for w in pool._workers:  # the zygotes that run are alive and not stopped
        if w.proc is None:
            continue
        assert w.proc.poll() is None
        for p in psutil.Process(w.proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                assert p.status() != psutil.STATUS_STOPPED


def sleeper(mark: str) -> str:
    """Python source that replaces the process by a long sleeper whose command line carries ``mark``."""
    return f"os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(300)', {mark!r}])"


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    "source",
    [
        "while True:\n    pass",
        "import time\ntime.sleep(1000)",
        # swallowing every exception and signal it can
        "import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGXCPU, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    try:\n        time.sleep(1000)\n"
        "    except BaseException:\n        pass",
        "import signal\nsignal.signal(signal.SIGXCPU, lambda *a: None)\nwhile True:\n    try:\n        pass\n"
        "    except BaseException:\n        pass",
    ],
    ids=["busy-loop", "sleep", "swallow-sleep", "swallow-cpu"],
)
def test_runaway_programs_time_out(pool, source):
    t = time.monotonic()
    r = pool.run(Program(source), LIM)
    assert r.status == "timeout"
    assert time.monotonic() - t < LIM.wall_s + 2.0
    assert_host_clean(pool)


# --------------------------------------------------------------------------- memory, processes, output, disk


def test_huge_allocation(pool):
    r = pool.run(Program("x = bytearray(10 * 1024 ** 3)\nprint('allocated')"), LIM)
    assert r.status == "memory_limit" and "allocated" not in r.stdout
    r = pool.run(Program("import ctypes\np = ctypes.CDLL(None).malloc(ctypes.c_size_t(10 * 1024 ** 3))\nprint(p)"), LIM)
    assert r.stdout.strip() in ("0", "None")  # NULL: the address space limit holds for C code too
    assert_host_clean(pool)


@pytest.mark.parametrize(
    "bomb",
    [
        "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()",
        "while True:\n    try:\n        if os.fork() == 0:\n            {sleeper}\n    except OSError:\n        pass",
    ],
    ids=["os.fork", "ctypes-fork", "fork-exec"],
)
def test_fork_bombs_are_contained(pool, bomb):
    mark = marker()
    source = "import os, sys\n" + bomb.replace("{sleeper}", sleeper(mark))
    t = time.monotonic()
    r = pool.run(Program(source), LIM)
    assert r.status in ("timeout", "failed", "killed")
    assert time.monotonic() - t < LIM.wall_s + 3.0
    assert_host_clean(pool, mark)
    assert pool.run(Program("print('alive')"), LIM).stdout == "alive\n"


def test_process_count_is_limited(pool):
    source = ("import os, time\nn = 0\ntry:\n    while n < 1000:\n        if os.fork() == 0:\n"
              "            time.sleep(100)\n        n += 1\nexcept OSError:\n    pass\nprint(n)")
    r = pool.run(Program(source), LIM)
    assert 0 < int(r.stdout) < LIM.max_processes
    assert_host_clean(pool)


def test_thread_bomb(pool):
    source = ("import threading, time\nn = 0\ntry:\n    while n < 10000:\n"
              "        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()\n        n += 1\n"
              "except RuntimeError:\n    pass\nprint(n)")
    r = pool.run(Program(source), LIM)
    assert r.status == "passed" and int(r.stdout) < LIM.max_processes
    assert_host_clean(pool)


def test_output_flood(pool):
    t = time.monotonic()
    r = pool.run(Program("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n    sys.stderr.write('y' * 65536)"), LIM)
    assert r.status == "output_limit" and r.truncated
    assert len(r.stdout) <= LIM.max_output_bytes and len(r.stderr) <= LIM.max_output_bytes
    assert time.monotonic() - t < 2.0
    assert_host_clean(pool)


def test_disk_fill(pool, tmp_path):
    source = """
import os
import platform
written = 0
for d in ('.', '/tmp', '/dev/shm'):
    try:
        for i in range(1000):
            with open(os.path.join(d, f'fill{i}'), 'wb') as f:
                f.write(b'x' * (1 << 20))
            written += 1
    except OSError as e:
        print(d, e.errno)
print('MB', written)
"""
    host_tmp_before = set(os.listdir("/tmp"))
    r = pool.run(Program(source), LIM)
    assert r.status == "passed"
    assert int(r.stdout.split("MB")[1]) <= LIM.disk_mb
    assert "28" in r.stdout or "27" in r.stdout  # ENOSPC / EFBIG
    assert not {n for n in set(os.listdir("/tmp")) - host_tmp_before if n.startswith("fill")}
    r = pool.run(Program("import os\nprint(sorted(os.listdir('.')), os.listdir('/tmp'), os.listdir('/dev/shm'))"), LIM)
    assert r.stdout == "['solution.py'] [] []\n"  # nothing survives a run
    assert_host_clean(pool)


# --------------------------------------------------------------------------- filesystem


def test_host_secret_is_not_readable(pool, tmp_path):
    token = uuid.uuid4().hex
    secret = tmp_path / "secret.txt"
    secret.write_text(token)
    paths = [str(secret), str(tmp_path), "/etc/shadow", "/etc/passwd", "/root/.ssh", "/root/.bash_history", "/home",
             "/work", os.path.expanduser("~/.netrc"), os.getcwd(), "/proc/1/root/etc/shadow",
             f"/proc/{os.getpid()}/environ"]
    source = f"""
import os
import platform
for p in {paths!r}:
    try:
        if os.path.isdir(p):
            print(p, 'DIR', os.listdir(p))
        else:
            print(p, 'READ', open(p).read()[:200])
    except OSError as e:
        print(p, 'blocked', type(e).__name__)
"""
    r = pool.run(Program(source), LIM)
    assert r.status == "passed"
    assert token not in r.stdout + r.stderr
    assert " READ " not in r.stdout and " DIR " not in r.stdout, r.stdout
    assert secret.read_text() == token
    assert_host_clean(pool)


def test_no_write_outside_the_run(pool, tmp_path):
    mark = marker()
    targets = [str(tmp_path / "pwned"), f"/tmp/{mark}", f"/{mark}", f"/usr/{mark}", f"/etc/{mark}",
               os.path.join(os.path.dirname(sys.executable), mark), f"/dev/{mark}", "/proc/sys/kernel/hostname"]
    source = f"""
import os
import platform
for p in {targets!r}:
    try:
        with open(p, 'w') as f:
            f.write('x')
        print('WROTE', p)
    except OSError as e:
        print('blocked', p, type(e).__name__)
"""
    r = pool.run(Program(source), LIM)
    assert r.status == "passed"
    for p in targets[:-1]:
        assert not os.path.exists(p), p
    assert socket.gethostname() != "x"
    assert_host_clean(pool)
    assert "WROTE" not in r.stdout.replace(f"WROTE /tmp/{mark}", "").replace(f"WROTE /dev/{mark}", "")


# --------------------------------------------------------------------------- network


class _TcpListener:
    def __init__(self, family: int, host: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen()
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.contacted = threading.Event()
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.contacted.set()
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["v4", "v6"])
def test_tcp_to_host_loopback(pool, family, host):
    if family == socket.AF_INET6 and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback on this host")
    listener = _TcpListener(family, host)
    try:
        source = f"""
import socket
import struct
try:
    s = socket.create_connection(({host!r}, {listener.port}), timeout=1)
    s.sendall(b'hello')
    print('CONNECTED')
except OSError as e:
    print('blocked', type(e).__name__)
"""
        r = pool.run(Program(source), LIM)
        time.sleep(0.2)
        assert "CONNECTED" not in r.stdout and "blocked" in r.stdout
        assert not listener.contacted.is_set()
        assert_host_clean(pool)
    finally:
        listener.close()


def test_udp_to_host_loopback(pool):
    receivers = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    receivers[0].bind(("127.0.0.1", 0))
    if _ipv6_loopback():
        receivers.append(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
        receivers[1].bind(("::1", 0))
    targets = [(s.getsockname()[0], s.getsockname()[1], s.family == socket.AF_INET6) for s in receivers]
    source = f"""
import socket
import struct
for host, port, v6 in {targets!r}:
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(20):
        try:
            s.sendto(b'ping', (host, port))
        except OSError as e:
            print('blocked', e)
            break
"""
    try:
        pool.run(Program(source), LIM)
        for s in receivers:
            s.settimeout(0.3)
            with pytest.raises(socket.timeout):
                s.recvfrom(100)
        assert_host_clean(pool)
    finally:
        for s in receivers:
            s.close()


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["v4", "v6"])
def test_http_to_host_loopback(pool, family, host):
    if family == socket.AF_INET6 and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback on this host")
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"SECRET-PAGE")

        def log_message(self, *args):
            pass

    class Server(http.server.HTTPServer):
        address_family = family

    server = Server((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://{host if family == socket.AF_INET else '[' + host + ']'}:{server.server_port}/x"
    try:
        source = f"""
import urllib.request
try:
    print(urllib.request.urlopen({url!r}, timeout=1).read())
except Exception as e:
    print('blocked', type(e).__name__)
"""
        r = pool.run(Program(source), LIM)
        assert "SECRET-PAGE" not in r.stdout and "blocked" in r.stdout
        assert hits == []
        assert_host_clean(pool)
    finally:
        server.shutdown()
        server.server_close()


def test_host_unix_sockets(pool, tmp_path):
    path = tmp_path / "host.sock"
    abstract = "\0" + marker()
    servers = []
    for address in (str(path), abstract):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(address)
        s.listen()
        s.settimeout(0.3)
        servers.append(s)
    source = f"""
import socket
import struct
for address in {[str(path), abstract]!r}:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(address)
        print('CONNECTED')
    except OSError as e:
        print('blocked', type(e).__name__)
"""
    try:
        r = pool.run(Program(source), LIM)
        assert r.stdout.count("blocked") == 2
        for s in servers:
            with pytest.raises(socket.timeout):
                s.accept()
        assert_host_clean(pool)
    finally:
        for s in servers:
            s.close()


# --------------------------------------------------------------------------- processes and environment


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGSTOP", "SIGTERM"])
def test_parent_cannot_be_signalled(pool, sig):
    source = f"""
import os, signal
for target in (os.getppid(), 1):
    try:
        os.kill(target, signal.{sig})
        print('sent', target)
    except OSError as e:
        print('blocked', type(e).__name__)
os.kill(-1, signal.{sig})  # every process it may signal: none but its own
print('still here', flush=True)
os.kill(0, signal.{sig})  # its own process group: itself
"""
    r = pool.run(Program(source), LIM)
    assert r.stdout == "blocked PermissionError\nblocked PermissionError\nstill here\n"
    assert r.status == {"SIGKILL": "killed", "SIGSTOP": "timeout", "SIGTERM": "killed"}[sig]
    assert_host_clean(pool)
    assert all(x.status == "passed" for x in pool.run_many([Program("print(1)")] * 4, LIM))
    # with tests: the evaluator is out of reach too
    r = pool.run(Program(f"import os, signal\nos.kill(os.getppid(), signal.{sig})\n" + WRONG_ADD, tests=ADD_TESTS), LIM)
    assert r.status == "failed" and r.tests_total == 3


def test_parent_memory_and_descriptors_are_out_of_reach(pool):
    source = """
import os
for target in sorted({os.getppid(), 1}):
    paths = [f'/proc/{target}/{what}' for what in ('mem', 'environ', 'maps', 'fd/0', 'fd/1', 'fd/2')]
    try:  # descriptor numbers may be listed (rootless: the run's init is the program's uid)
        paths += [f'/proc/{target}/fd/{fd}' for fd in os.listdir(f'/proc/{target}/fd')]
    except OSError:
        pass
    for path in paths:
        for mode in (os.O_RDONLY, os.O_WRONLY):
            try:
                os.open(path, mode | os.O_NONBLOCK)
                print('opened', path, mode)
            except OSError:
                print('blocked', path, mode)
"""
    r = pool.run(Program(source), LIM)
    assert r.status == "passed" and r.stdout.count("blocked") == r.stdout.count("\n") > 0, r.stdout


def test_parent_environment_is_not_visible(tmp_path, monkeypatch):
    token = uuid.uuid4().hex
    monkeypatch.setenv("STARLOOP_TEST_SECRET", token)
    source = """
import os
import platform
print(dict(os.environ))
for pid in ['self', str(os.getppid()), '1'] + [p for p in os.listdir('/proc') if p.isdigit()]:
    try:
        print(pid, open(f'/proc/{pid}/environ', 'rb').read())
    except OSError as e:
        print(pid, 'blocked', type(e).__name__)
"""
    with SandboxPool(1) as p:  # started after the secret was set
        r = p.run(Program(source), LIM)
    assert r.status == "passed"
    assert token not in r.stdout + r.stderr
    assert "STARLOOP_TEST_SECRET" not in r.stdout


@pytest.mark.parametrize(
    "leak",
    [
        # double fork + setsid daemon
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        {sleeper}\n    os._exit(0)",
        # spawned from an atexit handler
        "import atexit\natexit.register(lambda: os.fork() == 0 and ({sleeper_expr}))",
        # a subprocess in a new session
        "import subprocess\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', MARK],"
        " start_new_session=True)",
        # a non-daemon multiprocessing child
        "import multiprocessing, time\nmultiprocessing.Process(target=time.sleep, args=(300,)).start()\nos._exit(0)",
    ],
    ids=["double-fork", "atexit", "popen-session", "multiprocessing"],
)
def test_no_process_outlives_the_run(pool, leak):
    mark = marker()
    source = (f"import os, sys\nMARK = {mark!r}\n"
              + leak.replace("{sleeper}", sleeper(mark)).replace("{sleeper_expr}", sleeper(mark)) + "\nprint('done')")
    r = pool.run(Program(source), LIM)
    assert r.status in ("passed", "failed"), r.stderr
    assert_host_clean(pool, mark)


def test_no_namespaces_no_ptrace(pool):
    source = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print('unshare-user', libc.unshare(0x10000000))
print('unshare-net', libc.unshare(0x40000000))
print('ptrace', libc.ptrace(16, os.getppid(), 0, 0))
print('mount', libc.mount(b'tmpfs', b'/tmp', b'tmpfs', 0, None))
print('uid', os.getuid())
print(open('/proc/self/status').read())
"""
    r = pool.run(Program(source), LIM)
    lines = dict(line.split(None, 1) for line in r.stdout.splitlines()[:5])
    assert lines["unshare-user"] == lines["unshare-net"] == lines["ptrace"] == lines["mount"] == "-1"
    assert lines["uid"] != "0" or os.geteuid() != 0
    assert "CapEff:\t0000000000000000" in r.stdout and "NoNewPrivs:\t1" in r.stdout


def _run_classic_bpf(prog: bytes, nr: int, arch: int, arg0: int) -> int:
    """What a seccomp filter (classic BPF, the few instructions the sandbox uses) returns."""
    ins = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    data = {0: nr, 4: arch, 16: arg0}
    pc = acc = 0
    while True:
        code, jt, jf, k = ins[pc]
        if code == 0x06:
            return k
        if code == 0x20:
            acc, pc = data[k], pc + 1
            continue
        taken = {0x15: acc == k, 0x25: acc > k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
        pc += 1 + (jt if taken else jf)


def test_seccomp_filter_denies_exactly_the_listed_calls():
    if platform.machine() != "x86_64":
        pytest.skip("the filter is x86_64 only")
    prog = _zygote._seccomp_filter()
    allow, eperm, enosys, kill = 0x7FFF0000, 0x00050001, 0x00050026, 0x80000000
    x86_64 = 0xC000003E
    for nr in range(1100):
        for arg0 in (0, 1, 2, 0x11, _zygote.PR_SET_PDEATHSIG, 0x00020000, 0x10000000, 0x40000000, 0x01200011):
            got = _run_classic_bpf(prog, nr, x86_64, arg0)
            if nr in _zygote._X86_64_DENY:
                want = eperm
            elif nr == 435:  # clone3
                want = enosys
            elif nr == 56:  # clone: no new namespaces
                want = eperm if arg0 & _zygote._NS_FLAGS else allow
            elif nr == 157:  # prctl: no parent-death signal
                want = eperm if arg0 == _zygote.PR_SET_PDEATHSIG else allow
            elif nr in (62, 129, 200, 234, 297):  # kill and its kin: never to pid 1
                want = eperm if arg0 == 1 else allow
            else:
                want = allow
            assert got == want, (nr, hex(arg0))
    assert _run_classic_bpf(prog, 0x40000000 + 1, x86_64, 0) == eperm  # x32 system calls
    assert _run_classic_bpf(prog, 0, 0x40000003, 0) == kill  # another architecture


# --------------------------------------------------------------------------- verdict integrity

TRICKS = {
    "sys.exit-before-tests": "import sys\nsys.exit(0)\n",
    "os._exit-before-tests": "import os\nos._exit(0)\n",
    "SystemExit-inside-test": "def add(a, b):\n    raise SystemExit(0)\n",
    "os._exit-inside-test": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "kill-own-group-inside-test": "import os, signal\ndef add(a, b):\n    os.kill(0, signal.SIGKILL)\n",
    "atexit": "import atexit, os\natexit.register(lambda: (print('3 passed'), os._exit(0)))\n"
              "def add(a, b):\n    raise SystemExit(0)\n",
    "excepthook": "import sys\nsys.excepthook = lambda *a: print('OK')\n"
                  "sys.unraisablehook = lambda *a: None\ndef add(a, b):\n    raise AssertionError\n",
    "fake-pass-markers": "print('PASSED\\nAll tests passed\\nOK (3 tests)\\n{\"passed\": true, \"score\": 1.0}')\n",
    "fake-result-files": "import json\nfor p in ('result.json', '/tmp/result.json', 'junit.xml', '.pytest_cache'):\n"
                         "    try:\n        open(p, 'w').write(json.dumps({'passed': 3, 'failed': 0}))\n"
                         "    except OSError:\n        pass\n",
    "monkeypatch-unittest": "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n"
                            "unittest.TestCase.assertTrue = lambda *a, **k: None\nunittest.main = lambda *a, **k: None\n"
                            "unittest.TestResult.wasSuccessful = lambda self: True\n",
    "patch-builtins": "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
                      "builtins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 3\n",
    "shadow-builtins": "def abs(x):\n    return 0\ndef len(x):\n    return 3\ndef isinstance(*a):\n    return True\n",
    "always-equal": "class Any:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
                    "    def __bool__(self):\n        return True\ndef add(a, b):\n    return Any()\n",
    "int-subclass-equal": "class Int(int):\n    def __eq__(self, other):\n        return True\n"
                          "    __hash__ = int.__hash__\ndef add(a, b):\n    return Int(0)\n",
    "forged-frames": "import os, json, struct, threading, time\n"
                     "def frame(o):\n    d = json.dumps(o).encode()\n    os.write(4, struct.pack('!I', len(d)) + d)\n"
                     "frame({'t': 'ready'})\nfor i in range(1, 40):\n    frame({'t': 'r', 'i': i, 'v': 3})\n"
                     "def spam():\n    while True:\n        frame({'t': 'r', 'i': 5, 'v': True})\n        time.sleep(0.001)\n"
                     "threading.Thread(target=spam, daemon=True).start()\n",
    "stop-parent": "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGSTOP)\nexcept OSError:\n    pass\n",
}


@pytest.mark.parametrize("trick", sorted(TRICKS), ids=sorted(TRICKS))
def test_exit_and_report_tricks_never_pass(pool, trick):
    source = TRICKS[trick] + ("" if "def add" in TRICKS[trick] else WRONG_ADD)
    r = pool.run(Program(source, tests=ADD_TESTS), LIM)
    assert r.status != "passed", trick
    assert r.tests_passed == 0 and r.tests_total == 3, r.tests
    assert_host_clean(pool)


def test_shadowed_builtins_do_not_fool_humaneval_checks(pool):
    tests = "def check(candidate):\n    assert abs(candidate(2.0) - 4.0) < 1e-6\n    assert len(candidate(1.0) * [1]) == 1\n\n" \
            "check(square)\n"
    r = pool.run(Program("def abs(x):\n    return 0\ndef square(x):\n    return 0.0\n", tests=tests, entry_point="square"), LIM)
    assert r.status == "failed" and r.tests_passed == 0


def test_tests_never_reach_the_program(pool):
    """The program cannot find the tests (say, their expected values) anywhere in its memory."""
    scan = """
import ctypes
A = bytes([51, 49, 51, 51, 55, 41, 32, 61, 61, 32])   # "31337) == "
B = bytes([53, 49, 51, 51, 55])                       # "51337"
hits = 0
for line in open('/proc/self/maps').read().splitlines():
    parts = line.split()
    if 'r' not in parts[1] or (len(parts) > 5 and parts[5].startswith('[v')):
        continue
    lo, hi = (int(x, 16) for x in parts[0].split('-'))
    try:
        data = ctypes.string_at(lo, hi - lo)
    except Exception:
        continue
    i = data.find(A)
    while i >= 0:
        hits += data[i + len(A): i + len(A) + len(B)] == B
        i = data.find(A, i + 1)
print('hits', hits)
def add(a, b):
    return a + b
"""
    tests = "assert add(1, 2) == 3\nassert add(20000, 31337) == 51337\n"
    for _ in range(4):  # the same problem again and again on the same workers
        r = pool.run(Program(scan, tests=tests), Limits(wall_s=20, memory_mb=2048))
        assert r.status == "passed", r.stderr
        assert r.stdout == "hits 0\n"


def test_evaluator_survives_a_hostile_channel(pool):
    """Garbage on the call channel fails the tests; it does not crash or hang the sandbox."""
    source = "import os\nos.write(4, b'\\xff' * 100000)\n" + WRONG_ADD
    r = pool.run(Program(source, tests=ADD_TESTS), LIM)
    assert r.status == "failed" and r.tests_passed == 0
    source = "import os, struct\nos.write(4, struct.pack('!I', 1 << 30))\n" + WRONG_ADD
    r = pool.run(Program(source, tests=ADD_TESTS), LIM)
    assert r.status == "failed"
    source = "import os, struct\nd = b'[' * 100000\nos.write(4, struct.pack('!I', len(d)) + d)\n" + WRONG_ADD
    r = pool.run(Program(source, tests=ADD_TESTS), LIM)
    assert r.status == "failed"
    assert pool.run(Program("def add(a, b):\n    return a + b", tests=ADD_TESTS), LIM).status == "passed"


def test_signal_constants_exist():
    assert signal.SIGXCPU and signal.SIGSTOP  # the parametrized tests above rely on them
