"""Platform-neutral text helpers the chat adapters share (no SDK, no markup parser)."""
