"""OpenTelemetry tracing of one gateway process: off unless an OTLP endpoint is configured."""

from gateway_core.telemetry.setup import Telemetry, open_telemetry, tracing_configured

__all__ = ["Telemetry", "open_telemetry", "tracing_configured"]
