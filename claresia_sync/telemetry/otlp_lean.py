"""The export request as the receiver reads it: `ExportLogsServiceRequest` with each log
record's attributes as a `map<string, AnyValue>` (issue 23).

Same wire format: a map entry is encoded exactly as a `KeyValue` (key 1, value 2), so the same
bytes parse into either. Through the generated classes a record's attributes are a list of
`KeyValue`s, and reading the 8 an `api_request`'s usage needs means making a wrapper and a key
string for each of its ~19 to compare them; through the map they are looked up by key in C
(parsing costs the same; bench/RESULTS.md, OTLP). Every other field is declared as in
opentelemetry-proto (copied from its descriptors), so what the receiver accepts is unchanged.
The last of two entries with one key wins, as it does when a list is read into a dict.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

_PACKAGE = "claresia.otlp.lean"
_STANDARD: dict[str, Any] = {  # lean name -> the generated message it copies
    "Export": logs_service_pb2.ExportLogsServiceRequest,
    "ResourceLogs": logs_pb2.ResourceLogs,
    "ScopeLogs": logs_pb2.ScopeLogs,
    "LogRecord": logs_pb2.LogRecord,
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="claresia/otlp_lean.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=[logs_pb2.DESCRIPTOR.name, *(d.name for d in logs_pb2.DESCRIPTOR.dependencies)],
    )
    renamed = {f".{m.DESCRIPTOR.full_name}": f".{_PACKAGE}.{n}" for n, m in _STANDARD.items()}
    for name, standard in _STANDARD.items():
        message = proto.message_type.add()
        standard.DESCRIPTOR.CopyToProto(message)
        message.name = name
        for field in message.field:
            if field.type_name in renamed:
                field.type_name = renamed[field.type_name]
    record = next(m for m in proto.message_type if m.name == "LogRecord")
    entry = record.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    label = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    entry.field.add(name="key", number=1, label=label, type=9)  # string
    entry.field.add(
        name="value",
        number=2,
        label=label,
        type=11,  # message
        type_name=".opentelemetry.proto.common.v1.AnyValue",
    )
    attributes = next(f for f in record.field if f.name == "attributes")
    attributes.type_name = f".{_PACKAGE}.LogRecord.AttributesEntry"
    return proto


_POOL = descriptor_pool.Default()
try:
    _POOL.FindFileByName("claresia/otlp_lean.proto")
except KeyError:
    _POOL.Add(_file())

Export: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.Export"))
"""The lean `ExportLogsServiceRequest` (`Export.FromString(body)`)."""


def lean(request: logs_service_pb2.ExportLogsServiceRequest) -> Any:
    """A request of the generated classes (a JSON export, a test's) as the receiver reads it."""
    return Export.FromString(request.SerializeToString())
