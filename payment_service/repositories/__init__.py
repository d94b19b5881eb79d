"""All of the payment service's SQL (asyncpg, written out), one module per domain."""
