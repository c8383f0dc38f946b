"""Helpers for tests that run the platform as processes: a webhook receiver, an OTLP sink, the processes."""
