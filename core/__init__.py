"""Switchboard's channel-agnostic core: messages, ports, orchestrator, context and tools.

Nothing in this package imports a platform SDK, a database driver or an HTTP client;
`tests/unit/test_layering.py` enforces it.
"""
