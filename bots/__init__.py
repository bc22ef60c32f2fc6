"""The runnable assistant: settings, bot profile, composition root, server and CLI."""
