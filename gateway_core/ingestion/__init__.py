"""Document ingestion: parsers (bytes → text with structure) and chunkers (text → chunks)."""
