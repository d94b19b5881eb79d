"""The analytics service's domain layer: its rules, called by routers/ (and events.py when it
consumes events), reaching the database only through repositories/. The service has no domain
yet: it answers health and readiness, and its database holds the shared outbox tables only.
"""
