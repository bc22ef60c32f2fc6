"""The web channel: REST API (JSON and server-sent events) and the web chat page."""
