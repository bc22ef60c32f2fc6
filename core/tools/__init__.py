"""The model's tools: the registry (schemas, validation, running) and the general tools."""
