"""A loopback Azure OpenAI resource: OpenAI's wire format at deployment URLs.

It requires the `api-version` query and either the `api-key` header or an Entra ID
bearer token, and only knows the deployments it was given.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.openai_upstream import FakeOpenAI, Recorded


class FakeAzureOpenAI(FakeOpenAI):
    """Scripted Azure OpenAI; `base_url` is the resource endpoint."""

    def __init__(
        self,
        api_key: str | None = "azure-test-secret",
        *,
        deployments: tuple[str, ...] = ("chat-deploy",),
        bearer_token: str | None = None,
    ) -> None:
        super().__init__(api_key=None)  # the OpenAI check is replaced by Azure's below
        self.azure_key = api_key
        self.bearer_token = bearer_token
        self.deployments = deployments
        self.app.router.routes.append(
            Route("/openai/deployments/{name}/embeddings", self._embeddings, methods=["POST"])
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _azure_refusal(self, request: Request) -> Response | None:
        if not request.query_params.get("api-version"):
            return self._error(404, "Resource not found", {})
        if request.path_params.get("name") not in self.deployments:
            return self._error(404, "The API deployment for this resource does not exist.", {})
        bearer = request.headers.get("authorization", "")
        if self.bearer_token and bearer == f"Bearer {self.bearer_token}":
            return None
        if self.azure_key and request.headers.get("api-key") == self.azure_key:
            return None
        return self._error(
            401, "Access denied due to invalid subscription key or wrong API endpoint.", {}
        )

    async def _chat(self, request: Request) -> Response:
        refused = self._azure_refusal(request)
        if refused is not None:
            body = await request.json()
            self.requests.append(Recorded.of(request, body))
            return refused
        return await super()._chat(request)

    async def _embeddings(self, request: Request) -> Response:
        refused = self._azure_refusal(request)
        if refused is not None:
            return refused
        body = await request.json()
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), 0.5]}
            for i, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        return JSONResponse({"object": "list", "data": data, "model": "emb", "usage": usage})
