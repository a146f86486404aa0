"""Response cache: exact answers in memory or Redis, semantic matches in pgvector."""
