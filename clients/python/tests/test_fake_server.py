"""The client against a scripted in-process gRPC server: what a real server
cannot be made to do on demand (every status code on the wire, UNAVAILABLE a
few times then an answer, a server older than the client)."""
from __future__ import annotations

from concurrent import futures

import grpc
import pytest

import orchard
from orchard.v1 import error_details_pb2 as details_pb2
from orchard.v1 import orchard_pb2 as pb


def bad_request(code: grpc.StatusCode, field: str, type_url: str) -> bytes:
    bad = details_pb2.BadRequest(field_violations=[
        details_pb2.BadRequest.FieldViolation(field=field, description="no")])
    st = details_pb2.Status(code=code.value[0], message=f"{field}: no")
    st.details.add(type_url=type_url, value=bad.SerializeToString())
    return st.SerializeToString()


class Script:
    """What each call of the fake TaskService answers, and the calls seen."""

    def __init__(self):
        self.calls = {}
        self.answers = {}  # method -> list of (code, message, details) or a response

    def handler(self, method, response_type):
        def unary(request, context):
            self.calls[method] = self.calls.get(method, 0) + 1
            queue = self.answers.get(method, [])
            answer = queue.pop(0) if queue else (grpc.StatusCode.UNIMPLEMENTED, "", None)
            if isinstance(answer, tuple):
                code, message, details = answer
                if details:
                    context.set_trailing_metadata((("grpc-status-details-bin", details),))
                context.set_code(code)
                context.set_details(message)
                return response_type()
            return answer
        return grpc.unary_unary_rpc_method_handler(
            unary, request_deserializer=lambda b: b, response_serializer=lambda m: m.SerializeToString())


@pytest.fixture
def fake():
    script = Script()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    methods = {"GetTask": pb.Task, "RetryTask": pb.Task, "GetServerInfo": pb.ServerInfo,
               "SubmitTasks": pb.SubmitTasksResponse}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "orchard.v1.TaskService", {m: script.handler(m, t) for m, t in methods.items()}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    script.address = f"127.0.0.1:{port}"
    yield script
    server.stop(None)


# This test verifies that every non-OK code that comes over the wire raises its
# own class, with the field of a BadRequest detail (googleapis' type URL or
# ours) and the server's message.
def test_every_code_over_the_wire(fake):
    codes = [c for c in grpc.StatusCode if c is not grpc.StatusCode.OK]
    for i, code in enumerate(codes):
        url = ("type.googleapis.com/google.rpc.BadRequest" if i % 2 else
               "type.googleapis.com/orchard.v1.rpc.BadRequest")
        fake.answers["GetTask"] = [(code, f"f{i}: no", bad_request(code, f"f{i}", url))]
        with orchard.Client(fake.address, retry=orchard.RetryPolicy(total=0)) as c:
            with pytest.raises(orchard.OrchardError) as e:
                c.get("t-x")
        name = "".join(w.capitalize() for w in code.name.split("_"))
        assert type(e.value) is getattr(orchard, name), code
        assert e.value.code is code and e.value.field == f"f{i}" and e.value.message == f"f{i}: no"


# This test verifies that UNAVAILABLE is retried for a call safe to repeat
# (GetTask) until it answers, and not for one that is not (RetryTask).
def test_unavailable_retried_only_when_safe(fake):
    fake.answers["GetTask"] = [(grpc.StatusCode.UNAVAILABLE, "down", None)] * 3 + [
        pb.Task(id="t-1", state=pb.RUNNING)]
    fake.answers["RetryTask"] = [(grpc.StatusCode.UNAVAILABLE, "down", None),
                                 pb.Task(id="t-1")]
    with orchard.Client(fake.address,
                        retry=orchard.RetryPolicy(initial=0.01, cap=0.05, total=5)) as c:
        t = c.get("t-1")
        assert t.id == "t-1" and t.state is orchard.State.RUNNING
        assert fake.calls["GetTask"] == 4
        with pytest.raises(orchard.Unavailable):
            c.task("t-1").retry()
        assert fake.calls["RetryTask"] == 1


# This test verifies that a server older than the client (no GetServerInfo,
# no SubmitTasks) is reported as such, by name, not as a bare UNIMPLEMENTED.
def test_server_older_than_the_client(fake):
    with orchard.Client(fake.address) as c:
        with pytest.raises(orchard.ServerTooOld, match="older than this client needs"):
            c.server_info()
        with pytest.raises(orchard.ServerTooOld, match="SubmitTasks"):
            c.submit_many([{"kind": "noop", "range": (0, 1)}])
        fake.answers["GetServerInfo"] = [pb.ServerInfo(version="0.0.9", api_version=1)]
        with pytest.raises(orchard.ServerTooOld, match="API version 1"):
            c.server_info()
    assert issubclass(orchard.ServerTooOld, orchard.Unimplemented)
