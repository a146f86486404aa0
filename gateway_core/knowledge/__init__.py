"""Knowledge bases: the filter language, embeddings for documents and queries, backends."""
