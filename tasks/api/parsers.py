"""Request bodies: JSON only, and a body nested too deeply to read is the client's error."""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JSONBodyParser(JSONParser):
    """DRF's JSON parser, answering 400 (not a logged 500) for a body nested past the
    interpreter's recursion limit, such as 100,000 `[`. No body of this API nests more than
    two levels."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply to read; "
                             "no request of this API nests objects or arrays more than two levels.") from None
