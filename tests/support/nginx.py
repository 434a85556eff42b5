"""nginx from the system, run by a test with deploy/nginx/dashboard.conf, and daphne processes
kept up the way systemd keeps deploy/systemd/dashboard@.service up.

- `Nginx`: the shipped site file with only the site-specific values replaced (ports, host
  names, certificate, static folder, the upstreams file), in a main configuration whose
  pid, logs and temp paths are under a temp dir; a foreground child process on loopback.
- `self_signed_certificate`: a certificate for 127.0.0.1 and localhost (openssl).
- `Supervised`: one daphne per port, started again whenever it exits (Restart=always), with
  a pid file, so deploy/rolling-restart's RESTART_COMMAND can be "SIGTERM, wait for exit".
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT, DaphneServer, free_port, wait_port

# nginx's connection limits as docs/deploy.md sets them on a host (/etc/nginx/nginx.conf).
WORKER_CONNECTIONS = 8192
NOFILE = 16384

SITE = ROOT / "deploy" / "nginx" / "dashboard.conf"
UNIT = ROOT / "deploy" / "systemd" / "dashboard@.service"
DAPHNE = [sys.executable, "-m", "daphne"]  # the unit runs .venv/bin/daphne, the same program


def self_signed_certificate(folder):
    """(certificate, key, ca) paths: a throwaway CA and a certificate for 127.0.0.1 and
    localhost signed by it (clients trust the CA file)."""
    folder = Path(folder)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "key.pem", "cert.csr", "cert.pem"))
    ext = folder / "cert.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    for args in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=dashboard test CA",
         "-keyout", ca_key, "-out", ca],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", key, "-out", csr],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
         "-extfile", ext, "-out", cert],
    ):
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)
    return cert, key, ca


def replace_exactly(text, old, new):
    assert old in text, f"deploy/nginx/dashboard.conf no longer contains {old!r}: update tests/support/nginx.py"
    return text.replace(old, new)


class Nginx:
    """The shipped nginx site in front of `upstream_ports`, on free loopback ports."""

    def __init__(self, folder, upstream_ports, static_root, proxy_bind=None):
        self.dir = Path(folder)
        self.upstream_ports = list(upstream_ports)
        self.static_root = Path(static_root)
        self.proxy_bind = proxy_bind  # the source address nginx connects to daphne from
        self.http_port, self.https_port = free_port(), free_port()
        self.upstreams = self.dir / "upstreams.conf"
        self.proc = None

    @property
    def https(self):
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def wss(self):
        return f"wss://127.0.0.1:{self.https_port}/ws/dashboard/"

    def site(self):
        """deploy/nginx/dashboard.conf with this machine's values in place of the example's."""
        text = SITE.read_text()
        cert, key, _ = self.cert
        for old, new in (
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
            ("listen [::]:80;\n", ""),
            ("listen 443 ssl;", f"listen 127.0.0.1:{self.https_port} ssl;"),
            ("listen [::]:443 ssl;\n", ""),
            ("server_name dash.example.com;", "server_name 127.0.0.1 localhost;"),
            ("https://$host$request_uri", f"https://$host:{self.https_port}$request_uri"),
            ("/etc/ssl/dashboard/fullchain.pem", str(cert)),
            ("/etc/ssl/dashboard/privkey.pem", str(key)),
            ("/srv/dashboard/staticfiles/", f"{self.static_root}/"),
            ("/etc/nginx/dashboard/upstreams.conf", str(self.upstreams)),
        ):
            text = replace_exactly(text, old, new)
        if self.proxy_bind:
            text = replace_exactly(text, "proxy_http_version 1.1;", f"proxy_http_version 1.1;\n    proxy_bind {self.proxy_bind};")
        return text

    def main_config(self):
        temp = {name: self.dir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        # As root, workers would run as `nobody` and could not read the temp dir.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return (
            f"{user}worker_processes 1;\npid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} info;\n"
            # docs/deploy.md's numbers: a dashboard is two connections (its own and nginx's to
            # the process), so Debian's 768 would hold about 380 dashboards per worker.
            f"worker_rlimit_nofile {NOFILE};\n"
            f"events {{ worker_connections {WORKER_CONNECTIONS}; }}\n"
            "http {\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
            f"    access_log {self.dir / 'access.log'};\n"
            f"    client_body_temp_path {temp['client_body']};\n    proxy_temp_path {temp['proxy']};\n"
            f"    fastcgi_temp_path {temp['fastcgi']};\n    uwsgi_temp_path {temp['uwsgi']};\n"
            f"    scgi_temp_path {temp['scgi']};\n"
            f"    include {self.dir / 'site.conf'};\n}}\n"
        )

    def write_upstreams(self):
        """The upstreams file as shipped (deploy/nginx/upstreams.conf), with the test's ports."""
        lines = [f"server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in self.upstream_ports]
        self.upstreams.write_text("\n".join(lines) + "\n")

    def command(self, *extra):
        conf = self.dir / "nginx.conf"
        return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(self.dir), "-c", str(conf),
                "-e", str(self.dir / "error.log"), *extra]

    @property
    def reload_command(self):
        """What deploy/rolling-restart runs as NGINX_RELOAD for this nginx."""
        return " ".join(self.command("-s", "reload"))

    def start(self):
        self.cert = self_signed_certificate(self.dir)
        self.write_upstreams()
        (self.dir / "site.conf").write_text(self.site())
        (self.dir / "nginx.conf").write_text(self.main_config())
        test = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert test.returncode == 0, f"nginx -t failed:\n{test.stderr}"
        self.proc = subprocess.Popen(self.command("-g", "daemon off;"), stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "ab"))
        assert wait_port(self.https_port, self.proc, 15) and wait_port(self.http_port, self.proc, 5), self.log()
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # Fast shutdown: the master stops its workers (old generations included) at once.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log(self):
        path = self.dir / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def worker_count(self):
        """Worker processes alive (old generations linger while they hold open sockets)."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.proc.pid)], capture_output=True, text=True,
                             timeout=10)
        return sum(1 for line in out.stdout.splitlines() if "worker process" in line)


def unit_daphne_arguments():
    """The daphne arguments of deploy/systemd/dashboard@.service's ExecStart, port as %i."""
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())  # systemd joins lines ending in a backslash
    match = re.search(r"^ExecStart=\S*/daphne (.+)$", text, re.M)
    assert match, "deploy/systemd/dashboard@.service has no daphne ExecStart"
    return match.group(1).split()


class Supervised(DaphneServer):
    """A daphne for one port, started again after every exit, like systemd's Restart=always,
    with the unit's own arguments. The pid file names the current process."""

    def __init__(self, env, port, pid_dir):
        super().__init__(env, port)
        self.pid_file = Path(pid_dir) / f"{port}.pid"
        self.starts, self.exits = 0, []
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        args = [a.replace("%i", str(self.port)) for a in unit_daphne_arguments()]
        self.proc = subprocess.Popen([*DAPHNE, *args], cwd=ROOT, env=self.env,
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT)
        self.starts += 1
        self.pid_file.write_text(str(self.proc.pid))
        if not wait_port(self.port, self.proc, 40):
            raise RuntimeError(f"daphne did not start:\n{self.log()}")
        return self

    def supervise(self):
        self.start()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set():
            code = self.proc.wait()
            self.exits.append(code)
            if self._stop.is_set():
                return
            time.sleep(0.2)  # RestartSec (the unit has 1 s; the test keeps it short)
            try:
                self.start()
            except RuntimeError:
                return

    def stop(self, timeout=15):
        self._stop.set()
        super().stop(timeout)
        if self._thread is not None:
            self._thread.join(10)
        super().stop(timeout)  # one the watcher may have started meanwhile


# What deploy/rolling-restart runs to restart one process here: SIGTERM to the pid in the
# pid file, then wait for it to exit (Supervised starts the next one), like `systemctl restart`;
# a process still there after 30 s fails the restart, as systemd's stop timeout would.
RESTART_COMMAND = ('pid=$(cat "{pid_dir}/$PORT.pid"); kill -TERM "$pid"; '
                   'for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done; '
                   'echo "process $pid on port $PORT still running 30 s after SIGTERM" >&2; exit 1')
