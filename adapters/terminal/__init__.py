"""The terminal channel: `switchboard chat`."""
