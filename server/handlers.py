"""Plumbing for server interceptors: run code around an RPC's behaviour, and refuse an RPC.

grpc.ServerInterceptor only sees the method name and metadata, and runs on the server's single
polling thread. Work that needs the request, the peer's certificate or a database read belongs in
the behaviour, on a worker thread: so interceptors here return the handler with its behaviour
wrapped. Each RPC runs in a contextvars.Context of its own (grpc's), so a ContextVar set by one
wrapper is seen by the wrappers and the servicer inside it, and by nothing else.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, NoReturn

import grpc

REASON_KEY = "hashmatch-reason"
RETRY_AFTER_KEY = "retry-after"

Behavior = Callable[[Any, grpc.ServicerContext], Any]
# Called when the behaviour is done, with the exception it ended with (None: it succeeded).
Release = Callable[[BaseException | None], None]
# (request or request iterator, context) -> (request or request iterator to pass on, release).
# A gate refuses by calling refuse().
Gate = Callable[[Any, grpc.ServicerContext], tuple[Any, Release]]


def refuse(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    message: str,
    reason: str | None = None,
    retry_after: float | None = None,
) -> NoReturn:
    """End the RPC with ``code``; the reason and retry-after (seconds) go in the trailing metadata."""
    trailing = []
    if reason:
        trailing.append((REASON_KEY, reason))
    if retry_after is not None:
        trailing.append((RETRY_AFTER_KEY, f"{max(retry_after, 0.001):.3f}"))
    if trailing:
        context.set_trailing_metadata(tuple(trailing))
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def kind(handler: grpc.RpcMethodHandler) -> tuple[Behavior, Callable[..., grpc.RpcMethodHandler]]:
    """The handler's behaviour and the factory that builds a handler of the same kind."""
    if handler.request_streaming and handler.response_streaming:
        return handler.stream_stream, grpc.stream_stream_rpc_method_handler
    if handler.request_streaming:
        return handler.stream_unary, grpc.stream_unary_rpc_method_handler
    if handler.response_streaming:
        return handler.unary_stream, grpc.unary_stream_rpc_method_handler
    return handler.unary_unary, grpc.unary_unary_rpc_method_handler


def gated(handler: grpc.RpcMethodHandler, gate: Gate) -> grpc.RpcMethodHandler:
    """``handler`` with ``gate`` run (on the worker thread) before its behaviour, release after."""
    behavior, factory = kind(handler)
    if handler.response_streaming:

        def run_streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            request, release = gate(request, context)
            try:
                yield from behavior(request, context)
            except BaseException as exc:  # GeneratorExit too: the client went away mid-stream
                release(exc)
                raise
            release(None)

        new: Behavior = run_streaming
    else:

        def run_unary(request: Any, context: grpc.ServicerContext) -> Any:
            request, release = gate(request, context)
            try:
                response = behavior(request, context)
            except BaseException as exc:
                release(exc)
                raise
            release(None)
            return response

        new = run_unary
    return factory(new, request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)


def refusing(
    handler: grpc.RpcMethodHandler,
    code: grpc.StatusCode,
    message: str,
    reason: str | None = None,
    retry_after: float | None = None,
) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind that refuses at once, without parsing the request.

    No deserializer: the request's bytes are never decoded, so refusing costs next to nothing
    whatever the caller sent.
    """
    _behavior, factory = kind(handler)

    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        refuse(context, code, message, reason, retry_after)

    if handler.response_streaming:

        def deny_streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            deny(request, context)
            yield  # pragma: no cover - makes this a generator, as a streaming behaviour must be

        return factory(deny_streaming, request_deserializer=None, response_serializer=handler.response_serializer)
    return factory(deny, request_deserializer=None, response_serializer=handler.response_serializer)


def nothing(_error: BaseException | None) -> None:
    """A release with nothing to release."""


def split_method(method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``)."""
    _, _, rest = method.partition("/")
    service, _, name = rest.partition("/")
    return service, name
