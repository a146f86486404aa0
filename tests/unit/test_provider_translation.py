"""Provider translation details and model validation that the contract matrix does not show."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from gateway_core.domain.chat import ResolvedModel
from gateway_core.domain.models import ModelCreate
from gateway_core.errors import (
    ConfigurationError,
    InvalidRequestError,
    UpstreamRateLimitError,
)
from gateway_core.providers.anthropic import AnthropicProvider, to_messages_request
from gateway_core.providers.bedrock import parse_aws_keys, to_converse_request, translate_error
from gateway_core.providers.gemini import to_generate_request

ISSUE_EXAMPLE = {
    "id": "claude",
    "provider": "anthropic",
    "model": "claude-sonnet-4-5",
    "base_url": "http://127.0.0.1:9100",
    "credential": {"source": "env", "name": "ANTHROPIC_API_KEY"},
}


def _model(provider: str = "anthropic", **fields: object) -> ResolvedModel:
    return ResolvedModel.model_validate(
        {"id": "m", "version": 1, "provider": provider, "upstream_model": "x", **fields}
    )


def test_the_issue_example_body_is_a_valid_model() -> None:
    model = ModelCreate.model_validate(ISSUE_EXAMPLE)
    assert model.credential is not None and model.credential.name == "ANTHROPIC_API_KEY"
    assert model.model_dump(mode="json")["credential"] == ISSUE_EXAMPLE["credential"]


@pytest.mark.parametrize("base_url", ["https://host.example", "https://host.example/v1/"])
def test_anthropic_base_url_with_or_without_v1_reaches_v1_messages(base_url: str) -> None:
    provider = AnthropicProvider(http=None)  # type: ignore[arg-type]
    assert provider._url(_model(base_url=base_url), "messages") == (
        "https://host.example/v1/messages"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"provider": "azure_openai"}, "needs base_url"),
        ({"provider": "bedrock"}, "needs region"),
        ({"provider": "openai", "deployment": "d"}, "applies to provider azure_openai only"),
        ({"provider": "anthropic", "auth": "entra_id"}, "applies to provider azure_openai"),
        ({"provider": "anthropic", "credential": {"source": "vault"}}, "vault needs path"),
        (
            {"provider": "anthropic", "credential": {"source": "aws_secrets_manager"}},
            "needs secret_id",
        ),
        ({"provider": "anthropic", "credential": {"source": "env"}}, "env needs name"),
    ],
)
def test_provider_specific_fields_are_checked_where_models_are_written(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelCreate.model_validate({"id": "m", "model": "x", **fields})


def test_recorded_run_inputs_without_the_new_fields_still_decode() -> None:
    old = {
        "id": "m",
        "version": 3,
        "provider": "openai",
        "upstream_model": "gpt-4o-mini",
        "credential": {"source": "env", "name": "OPENAI_API_KEY"},
    }
    model = ResolvedModel.model_validate(old)
    assert model.api_version is None and model.region is None and model.auth is None


def test_anthropic_request_moves_system_defaults_max_tokens_and_groups_tool_results() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    call2 = {**call, "id": "c2"}
    request = to_messages_request(
        _model(),
        {
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": None, "tool_calls": [call, call2]},
                {"role": "tool", "tool_call_id": "c1", "content": "r1"},
                {"role": "tool", "tool_call_id": "c2", "content": "r2"},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": "required",
            "parallel_tool_calls": False,
            "stop": "END",
        },
    )
    assert request["system"] == "sys" and request["max_tokens"] == 4096
    assert [m["role"] for m in request["messages"]] == ["user", "assistant", "user"]
    assert [b["tool_use_id"] for b in request["messages"][2]["content"]] == ["c1", "c2"]
    assert request["messages"][1]["content"][0]["input"] == {"a": 1}
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert request["tools"][0]["input_schema"] == {"type": "object", "properties": {}}
    assert request["stop_sequences"] == ["END"]


def test_tool_call_arguments_that_are_not_json_are_a_400() -> None:
    bad = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    with pytest.raises(InvalidRequestError, match="JSON object"):
        to_messages_request(
            _model(),
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "tool_calls": [bad]},
                ]
            },
        )


def test_gemini_request_maps_json_mode_tool_choice_and_remote_images() -> None:
    request = to_generate_request(
        _model("gemini"),
        {
            "messages": [{"role": "user", "content": "q"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"schema": {"type": "object"}},
            },
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "max_tokens": 9,
        },
    )
    assert request["generationConfig"] == {
        "maxOutputTokens": 9,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert request["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["f"],
    }
    remote = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(InvalidRequestError, match="not supported by provider gemini"):
        to_generate_request(_model("gemini"), {"messages": [{"role": "user", "content": [remote]}]})


def test_bedrock_credentials_parse_from_json_or_colon_form() -> None:
    keys = parse_aws_keys(
        '{"access_key_id": "AKIA1", "secret_access_key": "s", "session_token": "t"}'
    )
    assert keys is not None and (keys.access_key_id, keys.session_token) == ("AKIA1", "t")
    keys = parse_aws_keys("AKIA2:secret2")
    assert keys is not None and keys.secret_access_key == "secret2" and keys.session_token is None
    assert parse_aws_keys(None) is None
    with pytest.raises(ConfigurationError):
        parse_aws_keys("only-one-part")


def test_bedrock_errors_map_to_retryable_or_not_without_secrets() -> None:
    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Converse"
    )
    error = translate_error(throttled, ("secret",))
    assert isinstance(error, UpstreamRateLimitError) and error.retryable
    denied = ClientError(
        {"Error": {"Code": "AccessDeniedException", "Message": "key AKIA:topsecret denied"}},
        "Converse",
    )
    error = translate_error(denied, ("AKIA:topsecret", "topsecret"))
    assert error.upstream_status == 403 and not error.retryable  # type: ignore[attr-defined]
    assert "topsecret" not in error.message


@pytest.mark.parametrize("option", ["seed", "presence_penalty", "frequency_penalty", "logit_bias"])
@pytest.mark.parametrize("provider", ["anthropic", "bedrock"])
def test_options_without_an_equivalent_are_a_400_unless_the_model_drops_them(
    provider: str, option: str
) -> None:
    # Hardening 14: Anthropic and Bedrock used to drop these silently.
    value: object = {"42": 5} if option == "logit_bias" else 1
    body = {"messages": [{"role": "user", "content": "hi"}], option: value}
    translate = to_messages_request if provider == "anthropic" else to_converse_request
    extra: dict[str, object] = {"region": "us-east-1"} if provider == "bedrock" else {}
    with pytest.raises(InvalidRequestError) as refused:
        translate(_model(provider, **extra), body)
    assert refused.value.param == option and provider in refused.value.message
    dropping = _model(provider, drop_unsupported_params=True, **extra)
    request = translate(dropping, body)
    assert option not in str(request)
