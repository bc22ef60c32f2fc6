"""Metrics: the `Telemetry` port as Prometheus counters, gauges and histograms."""
