"""The community service's SQL, one module per domain: plain async functions over an asyncpg
connection whose caller owns the transaction."""
