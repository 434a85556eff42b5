"""Read an HTML form the way a browser submits it: every named input, select and textarea with
its value (hidden inputs too, such as Django's `initial-<name>` values), so a test posts what a
person's browser would post after loading the page."""
from html import unescape
from html.parser import HTMLParser


class _Form(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.values, self._select, self._textarea, self._text = {}, None, None, []

    def handle_starttag(self, tag, attrs):
        attrs = {k: (v if v is not None else "") for k, v in attrs}
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button", "checkbox", "radio", "file"):
            self.values[name] = unescape(attrs.get("value", ""))
        elif tag == "input" and name and attrs.get("type") in ("checkbox", "radio") and "checked" in attrs:
            self.values[name] = attrs.get("value", "on")
        elif tag == "select" and name:
            self._select = name
            self.values.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.values[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values[self._textarea] = "".join(self._text).removeprefix("\n")
            self._textarea = None

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)


def form_values(html, skip=("csrfmiddlewaretoken", "action", "_selected_action")):
    """{name: value} of every field of the page's forms, as a browser would submit them."""
    parser = _Form()
    parser.feed(html)
    return {k: v for k, v in parser.values.items() if k not in skip}
