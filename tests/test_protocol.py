"""The protocol's names are defined once per side (realtime/protocol.py and
static/realtime/constants.js) and the two agree."""
import re
from pathlib import Path

from realtime import protocol

ROOT = Path(__file__).resolve().parent.parent


def js_object(name):
    source = (ROOT / "static" / "realtime" / "constants.js").read_text()
    body = re.search(rf"export const {name} = Object\.freeze\(\{{(.*?)\}}\);", source, re.S).group(1)
    return {key: value.strip().strip('"') for key, value in re.findall(r"(\w+):\s*([^,/\n]+)", body)}


def test_every_close_code_the_server_sends_is_known_to_the_browser_by_the_same_name():
    server = {name[len("CLOSE_"):]: value for name, value in vars(protocol).items() if name.startswith("CLOSE_")}
    browser = {key: int(value) for key, value in js_object("CLOSE").items()}
    assert server, "no close codes found"
    for name, code in server.items():
        assert browser.get(name) == code, f"CLOSE_{name}={code} is not CLOSE.{name} in constants.js"


def test_every_frame_type_is_known_to_the_browser():
    browser = set(js_object("MSG").values())
    assert {protocol.SUBSCRIBE, protocol.PING, protocol.PONG, protocol.SYNC, protocol.EVENT, protocol.EVENTS,
            protocol.ERROR} <= browser


def test_close_codes_sit_in_the_documented_bands():
    retry = [protocol.CLOSE_HEARTBEAT_TIMEOUT, protocol.CLOSE_TRY_LATER, protocol.CLOSE_RATE_LIMITED,
             protocol.CLOSE_TOO_MANY_SOCKETS]
    terminal = [protocol.CLOSE_NOT_SIGNED_IN, protocol.CLOSE_FORBIDDEN, protocol.CLOSE_PROTOCOL_VIOLATION,
                protocol.CLOSE_BY_OPERATOR]
    assert all(4000 <= c <= 4499 for c in retry) and all(4500 <= c <= 4999 for c in terminal)
    documented = (ROOT / "docs" / "protocol.md").read_text()
    for code in retry + terminal + [protocol.CLOSE_TOO_LARGE, protocol.CLOSE_SERVICE_RESTART]:
        assert f"| {code}" in documented or f", {code}" in documented, f"{code} is not in docs/protocol.md"
