#!/usr/bin/env python3
"""One command to run the dashboard, one to run the tests. Needs only Python 3.11+.

    python3 run.py               set up, then serve the dashboard on http://127.0.0.1:8000
    python3 run.py --port 8001   the same on another port (or PORT=8001 python3 run.py)
    python3 run.py test [ARGS]   set up, then run the whole test suite (pytest and node --test);
                                 ARGS go to pytest, e.g. python3 run.py test -k consumer -x

Setup is a virtualenv in .venv with the project installed; it is skipped when up to date.
DEMO_FLEET=0 serves without the simulated agents.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
DEFAULT_PORT = 8000


def sh(*args, echo=True, **kwargs):
    if echo:
        print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], cwd=ROOT, check=True, **kwargs)


def setup(extras):
    if sys.version_info < (3, 11):
        sys.exit("Python 3.11 or newer is needed (this is %d.%d)." % sys.version_info[:2])
    if not PY.exists():
        print("Creating the virtualenv in .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print("Installing the project and its dependencies into .venv (the first time takes a minute or two)",
              flush=True)
        # -qq: pip's and setuptools' notes (the editable-install warning) are not for this
        # screen; errors still show.
        pip = [PY, "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
        sh(*pip, "--upgrade", "pip", echo=False)
        sh(*pip, "-e", f".[{extras}]" if extras else ".", echo=False)
        stamp.write_text(digest)


def port_from(args):
    """The port from `--port N` (or `--port=N`), else PORT, else 8000; a bad one ends the run."""
    value, source = os.environ.get("PORT") or str(DEFAULT_PORT), "PORT"
    if args and args[0].startswith("--port="):
        value, source, args = args[0].split("=", 1)[1], "--port", args[1:]
    elif args and args[0] == "--port" and len(args) > 1:
        value, source, args = args[1], "--port", args[2:]
    if args:
        sys.exit(f"Unknown arguments: {' '.join(args)}\n{__doc__}")
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        sys.exit(f"{source} {value!r} is not a port number: use a whole number from 1 to 65535, e.g. --port 8001.")
    return int(value)


def serve(port):
    setup(None)
    manage = [PY, "manage.py"]
    env = dict(os.environ)
    # The first screen says what a newcomer needs: the fleet's expected 409s are not news, nor
    # is the stream's first epoch on a new database.
    env.setdefault("DJANGO_REQUEST_LOG_LEVEL", "ERROR")
    quiet = dict(env, REALTIME_LOG_LEVEL=env.get("REALTIME_LOG_LEVEL", "WARNING"))
    sh(*manage, "migrate", "--noinput", "-v", "0", echo=False, env=quiet)
    sh(*manage, "seed_demo", "--if-empty", echo=False, env=quiet)
    sh(*manage, "create_local_admin", echo=False, env=quiet)
    url = f"http://127.0.0.1:{port}"
    fleet = None
    if env.get("DEMO_FLEET", "1") != "0" and (ROOT / "tasks/management/commands/demo_fleet.py").exists():
        # --adopt: the fleet drives the agents seed_demo created (their running tasks go on from
        # the seeded progress), so the dashboard shows one fleet, not two side by side.
        print("Starting the demo fleet on the demo agents (set DEMO_FLEET=0 to turn it off)", flush=True)
        fleet = subprocess.Popen([str(PY), "manage.py", "demo_fleet", "--provision", "--adopt", "--url", url],
                                 cwd=ROOT, env=env)
    print(f"\nDashboard: {url}  (admin: {url}/admin/)\n", flush=True)
    try:
        subprocess.run([str(PY), "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT, env=env)
    except KeyboardInterrupt:
        pass
    finally:
        if fleet is not None:
            fleet.terminate()
            fleet.wait(10)


def test(pytest_args):
    setup("test")
    node = shutil.which("node")
    if node:
        sh(node, "--test", "tests/js/")
    elif os.environ.get("REQUIRE_SERVICES") == "1":
        sys.exit("node is needed for the JavaScript tests (REQUIRE_SERVICES=1)")
    else:
        print("SKIPPED the JavaScript tests: node is not installed", flush=True)
    result = subprocess.run([str(PY), "-m", "pytest", *pytest_args], cwd=ROOT)
    sys.exit(result.returncode)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "test":
        test(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
    else:
        serve(port_from(sys.argv[1:]))
