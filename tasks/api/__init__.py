"""The HTTP API for agents (bearer tokens) and operators (staff sessions). See docs/api.md."""
