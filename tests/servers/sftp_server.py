"""sftp_server.py - a private OpenSSH sshd on 127.0.0.1 for the sftp backend's tests.

start(workdir, port=None) -> info; stop(info). Everything lives under
<workdir>/sftp: host and client ed25519 keys (made once, so a restart on the
same port keeps the host key and the known_hosts line valid), sshd_config,
authorized_keys, known_hosts ("[127.0.0.1]:PORT <host key>"), sshd.log, and
the remote tree "remote/" (LS_TEST_SFTP_ROOT, also the session's login
directory through `ForceCommand internal-sftp -d`, so relative remote paths
land there too). /etc/ssh is never touched.

The server logs in only the user running it, by public key: with UsePAM no,
password authentication would check the account's real password in
/etc/shadow, which a test cannot use without changing the system, so the
password path of the backend is not exercised here.

sshd runs in the foreground (-D) in its own session; stop() ends it and the
per-connection children it forked (found through /proc), SIGTERM then
SIGKILL after a few seconds. It works from the pids alone, so another
process may stop what this one started.
"""

import os
import pwd
import socket
import subprocess

from common import free_port, serve_forever, spawn, stop_pids, wait_ready

SSHD = "/usr/sbin/sshd"
KEYGEN = "ssh-keygen"


def _keygen(path):
    if not os.path.exists(path):
        subprocess.run([KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "litesafe-test", "-f", path],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _fingerprint(pub):
    out = subprocess.run([KEYGEN, "-lf", pub], check=True, capture_output=True, text=True).stdout
    return out.split()[1]  # "256 SHA256:... comment (ED25519)"


def _banner(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def start(workdir, port=None):
    d = os.path.join(os.path.abspath(workdir), "sftp")
    remote = os.path.join(d, "remote")
    os.makedirs(remote, exist_ok=True)
    if any(c.isspace() for c in d):
        raise RuntimeError("sftp_server: workdir must not contain white space: %r" % d)
    user = pwd.getpwuid(os.geteuid()).pw_name
    host_key = os.path.join(d, "host_ed25519")
    client_key = os.path.join(d, "client_ed25519")
    _keygen(host_key)
    _keygen(client_key)
    os.chmod(client_key, 0o600)
    port = port or free_port()

    authorized = os.path.join(d, "authorized_keys")
    with open(client_key + ".pub") as f, open(authorized, "w") as g:
        g.write(f.read())
    known_hosts = os.path.join(d, "known_hosts")
    with open(host_key + ".pub") as f, open(known_hosts, "w") as g:
        g.write("[127.0.0.1]:%d %s\n" % (port, " ".join(f.read().split()[:2])))

    log = os.path.join(d, "sshd.log")
    pidfile = os.path.join(d, "sshd.pid")
    config = os.path.join(d, "sshd_config")
    with open(config, "w") as f:
        f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {pidfile}
AuthorizedKeysFile {authorized}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PermitRootLogin prohibit-password
AllowUsers {user}
MaxStartups 100
MaxSessions 100
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d {remote}
""")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    check = subprocess.run([SSHD, "-t", "-f", config], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError("sftp_server: sshd -t failed: " + check.stderr.strip())

    proc = spawn([SSHD, "-D", "-f", config, "-E", log], log)
    try:
        wait_ready(proc, "sshd", port, log, 15, ready=_banner)
    except BaseException:
        stop({"pids": [proc.pid]})
        raise
    return {
        "kind": "sftp",
        "pids": [proc.pid],
        "port": port,
        "workdir": workdir,
        "log": log,
        "env": {
            "LS_TEST_SFTP_HOST": "127.0.0.1:%d" % port,
            "LS_TEST_SFTP_USER": user,
            "LS_TEST_SFTP_KEY": client_key,
            "LS_TEST_SFTP_KNOWN_HOSTS": known_hosts,
            "LS_TEST_SFTP_FINGERPRINT": _fingerprint(host_key + ".pub"),
            "LS_TEST_SFTP_ROOT": remote,
        },
    }


def _children(pid):
    """Pids of the live descendants of pid (from /proc)."""
    parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p:
                found.append(c)
                todo.append(c)
    return found


def stop(info):
    """SIGTERM sshd and the per-connection children it forked (found through
    /proc: they need not stay in its process group), wait up to 5 s, then
    SIGKILL."""
    pids = []
    for pid in info.get("pids", []):
        pids += [pid] + _children(pid)
    stop_pids(pids, group=False)


if __name__ == "__main__":
    serve_forever(start, stop, "/tmp/sftp-test-server")
