"""Test harness for every service: real PostgreSQL, Redis and RabbitMQ, isolated per run.

Loaded as a pytest plugin (`-p shared.testing.plugin`, set in pyproject.toml).
"""
