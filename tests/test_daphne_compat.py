"""The adjustments to daphne (realtime/daphne_compat.py): all six installed, on the versions they
were tested with; another version of daphne, autobahn or Twisted fails here, so an upgrade is a
deliberate step (check each adjustment against the new code, then update TESTED)."""
import pytest

from realtime import daphne_compat


def test_the_installed_versions_are_the_tested_ones():
    assert daphne_compat.untested_versions() == {}, (
        f"tested with {daphne_compat.TESTED}; read realtime/daphne_compat.py against the new versions")


def test_every_adjustment_is_installed():
    daphne_compat.patch_daphne()  # a second call changes nothing
    assert daphne_compat.installed == {"close_codes", "flood_guard", "eager_writes", "application_checker",
                                       "buffered_bytes", "listeners"}
    assert daphne_compat.failed == {}


@pytest.mark.parametrize("version, tested", [("4.2.3", True), ("4.20.0", False), ("4.3.0", False), ("5.2.0", False),
                                             ("unknown", False)])
def test_a_version_is_tested_by_its_major_and_minor(version, tested):
    assert (daphne_compat._major_minor(version) == daphne_compat.TESTED["daphne"]) is tested


def test_the_walk_over_connections_runs_on_a_loop_of_its_own():
    from daphne.server import Server

    class FakeServer:
        application_checker = Server.application_checker

    server = FakeServer()
    FakeServer.application_checker(server)  # what daphne does at start
    checker = server.dashboard_checker
    assert checker.running and checker.interval == daphne_compat.APPLICATION_CHECK_EVERY
    FakeServer.application_checker(server)  # what daphne's walk does when it ends
    assert server.dashboard_checker is checker  # no second loop
    checker.stop()
