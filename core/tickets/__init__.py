"""Support tickets: values, the service, the `/ticket` grammar, notices and the model's tools."""
