"""OpenTelemetry tracing, off by default (``ICPFLOW_TRACING_ENABLED=true`` turns it on): one trace runs from the
API call through the workflow into its activities, via Temporal's contrib plugin (replay-safe spans) and FastAPI's
instrumentation. Spans leave the process over OTLP/HTTP to ``ICPFLOW_OTLP_ENDPOINT``."""

from __future__ import annotations

from typing import Any

import opentelemetry.trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from temporalio.client import Plugin
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider

from models.settings import Settings

# A ReplaySafeTracerProvider: spans made while a workflow replays are not emitted twice.
_installed: Any = None


def install_tracer_provider(settings: Settings, exporter: SpanExporter | None = None) -> Any:
    """The process-wide, replay-safe tracer provider (installed once; later calls return it)."""
    global _installed
    if _installed is None:
        provider = create_tracer_provider(resource=Resource.create({"service.name": settings.service_name}))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        opentelemetry.trace.set_tracer_provider(provider)
        _installed = provider
    return _installed


def client_plugins(settings: Settings) -> list[Plugin]:
    """Plugins for Client.connect: tracing when enabled (workers built on that client trace too)."""
    if not settings.tracing_enabled:
        return []
    install_tracer_provider(settings)
    return [OpenTelemetryPlugin(add_temporal_spans=True)]


def instrument_api(app: Any, settings: Settings) -> None:
    if settings.tracing_enabled:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=install_tracer_provider(settings))
