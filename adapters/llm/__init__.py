"""Language models: an OpenAI-compatible chat model, the offline responder, token counters."""
