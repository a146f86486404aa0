"""One module per document format; `gateway_core.ingestion.parsers.parse` chooses among them."""
