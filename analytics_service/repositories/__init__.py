"""SQL of the analytics service, one module per domain (asyncpg, written out)."""
