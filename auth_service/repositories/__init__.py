"""All of the auth service's SQL (asyncpg, written out), one module per domain."""
