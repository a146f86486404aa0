"""Request bodies the issues give as written (the knowledge-base and workflow issues);
tests and benchmarks that need them import them from here."""

from __future__ import annotations

from typing import Any

# The knowledge-base issue's local embedding model and knowledge base.
LOCAL_EMBED_MODEL: dict[str, Any] = {
    "id": "local-embed",
    "provider": "local",
    "model": "wordllama",
    "kind": "embedding",
    "dimensions": 256,
}
PRODUCT_DOCS_KB: dict[str, Any] = {
    "id": "product-docs",
    "name": "Product docs",
    "backend": {"type": "pgvector"},
    "embedding_model_id": "local-embed",
    "distance": "cosine",
}
# The workflow issue's example, exactly as written.
ANSWER_WITH_CONTEXT: dict[str, Any] = {
    "id": "answer-with-context",
    "name": "Answer with Context",
    "input_schema": {
        "type": "object",
        "properties": {"question": {"type": "string"}},
        "required": ["question"],
    },
    "steps": [
        {
            "name": "search",
            "type": "knowledge_base_search",
            "knowledge_base_id": "product-docs",
            "query": "${request:question}",
            "top_k": 10,
        },
        {
            "name": "check-results",
            "type": "conditional",
            "conditions": [
                {
                    "field": "${step:search:documents}",
                    "operator": "is_empty",
                    "action": {"end_workflow": {"answer": "No results found"}},
                }
            ],
            "default_action": "continue",
        },
        {
            "name": "score",
            "type": "crag_scoring",
            "input_documents": "${step:search:documents}",
            "query": "${request:question}",
            "threshold": 0.5,
            "strategy": "hybrid",
        },
        {
            "name": "answer",
            "type": "chat_completion",
            "model_id": "gpt-4",
            "user_message": "Question: ${request:question}\n\nContext:\n"
            "${step:score:correct_documents}",
        },
    ],
    "enabled": True,
}
