#!/usr/bin/env python3
"""One command to run the dashboard, one to run the tests. Needs only Python 3.11+.

    python3 run.py          set up, then serve the dashboard on http://127.0.0.1:8000
    python3 run.py test     set up, then run the whole test suite (pytest and node --test)

Setup is a virtualenv in .venv with the project installed; it is skipped when up to date.
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


def sh(*args, **kwargs):
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
        sh(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        target = f".[{extras}]" if extras else "."
        sh(PY, "-m", "pip", "install", "--quiet", "-e", target)
        stamp.write_text(digest)


def serve():
    setup(None)
    manage = [PY, "manage.py"]
    sh(*manage, "migrate", "--noinput", "-v", "0")
    sh(*manage, "seed_demo", "--if-empty")
    sh(*manage, "create_local_admin")
    fleet = None
    if os.environ.get("DEMO_FLEET", "1") != "0" and (ROOT / "tasks/management/commands/demo_fleet.py").exists():
        # --adopt: the fleet drives the agents seed_demo created (their running tasks go on from
        # the seeded progress), so the dashboard shows one fleet, not two side by side.
        print("Starting the demo fleet on the demo agents (set DEMO_FLEET=0 to turn it off)", flush=True)
        fleet = subprocess.Popen([str(PY), "manage.py", "demo_fleet", "--provision", "--adopt", "--url", "http://127.0.0.1:8000"], cwd=ROOT)
    print("\nDashboard: http://127.0.0.1:8000  (admin: http://127.0.0.1:8000/admin/)\n", flush=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_REQUEST_LOG_LEVEL", "ERROR")  # the fleet's expected 409s are not news
    try:
        subprocess.run([str(PY), "manage.py", "runserver", "127.0.0.1:8000", "--noreload"], cwd=ROOT, env=env)
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
    elif len(sys.argv) == 1:
        serve()
    else:
        sys.exit(__doc__)
