"""Edges of Switchboard: each subpackage wraps one SDK or platform behind a core port."""
