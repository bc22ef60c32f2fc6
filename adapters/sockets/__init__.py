"""Processes sharing one SQLite file, on one machine, signal each other over Unix sockets:
new work for the workers, and answers back to the process where a request waits."""
