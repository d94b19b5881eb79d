"""SQL per domain (asyncpg, written out)."""
