"""The Query protocol: ``Action=…&Version=2012-11-05``, form-encoded on ``POST /``
or ``POST /<account>/<queue>`` (or in a GET's query string), answered in XML.

The flattened form (``Attribute.1.Name``, ``SendMessageBatchRequestEntry.2.Id``,
``MessageAttribute.1.Value.StringValue``) is reshaped to the JSON protocol's
input, so the actions see one shape; their JSON-shaped output is written back
as SQS's XML. The names that differ between the two are listed here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from xml.sax.saxutils import escape

from wonderq.broker.sqs.awsjson import Actions, Context, request_id
from wonderq.broker.sqs.calls import Shape
from wonderq.broker.sqs.faults import INVALID_ACTION, SqsError, explain, invalid
from wonderq.broker.sqs.message_attributes import XML_INVALID
from wonderq.edge.params import natural
from wonderq.edge.requests import Request
from wonderq.edge.responses import Response
from wonderq.errors import WonderQError

XMLNS = "http://queue.amazonaws.com/doc/2012-11-05/"
CONTENT_TYPE = b"text/xml"
# flattened maps: Query prefix -> (JSON member, key name, value name)
MAPS = {
    "Attribute": ("Attributes", "Name", "Value"), "Tag": ("Tags", "Key", "Value"),
    "MessageAttribute": ("MessageAttributes", "Name", "Value"),
    "MessageSystemAttribute": ("MessageSystemAttributes", "Name", "Value"),
}
LISTS = {  # flattened lists: Query prefix -> JSON member
    "AttributeName": "AttributeNames", "MessageAttributeName": "MessageAttributeNames",
    "MessageSystemAttributeName": "MessageSystemAttributeNames", "TagKey": "TagKeys",
    "AWSAccountId": "AWSAccountIds", "ActionName": "Actions",
    "SendMessageBatchRequestEntry": "Entries", "DeleteMessageBatchRequestEntry": "Entries",
    "ChangeMessageVisibilityBatchRequestEntry": "Entries",
}
ITEMS = {  # output lists: JSON member -> XML element of each item
    "QueueUrls": "QueueUrl", "queueUrls": "QueueUrl", "Messages": "Message",
    "Failed": "BatchResultErrorEntry", "Results": "ListMessageMoveTasksResultEntry",
}
PAIRS = {"Attributes": ("Attribute", "Name", "Value"), "MessageAttributes": ("MessageAttribute", "Name", "Value"),
         "Tags": ("Tag", "Key", "Value")}
Tree = dict[str, "Tree | str"]
MAX_DEPTH = 8  # a field name's parts before its last (SQS's deepest name has 7 parts in all)
ENTITIES = {"\r": "&#xD;"}  # else an XML parser reads a carriage return as a newline


async def handle(request: Request, actions: Actions, context: Context) -> Response:
    # a presigned request's X-Amz-* parameters are the signature's (signatures.py), not the action's;
    # a blank value is as good as none (an empty list is sent as ``Entries=``), but for a map's
    # value: an empty RedrivePolicy or Policy removes it, and a tag's value may be empty
    params = {k: v for k, v in request.params.items()
              if isinstance(v, str) and (v or k.endswith(".Value")) and not k.startswith("X-Amz-")}
    name = params.pop("Action", "")
    if name not in actions:
        raise SqsError(INVALID_ACTION, f"The action {name} is not valid for this endpoint.")
    params.pop("Version", None)
    result = await actions[name][0](context(request, name, reshape(params), False))
    inner = f"<{name}Result>{element_items(name, result)}</{name}Result>"  # botocore wants it even empty
    rid = request_id()
    body = (f'<?xml version="1.0"?><{name}Response xmlns="{XMLNS}">{inner}'
            f"<ResponseMetadata><RequestId>{rid[1].decode()}</RequestId></ResponseMetadata></{name}Response>")
    return Response(body.encode(), 200, CONTENT_TYPE, (rid,))


def reshape(params: Mapping[str, str]) -> Shape:
    """``A.1.B=x`` style members to the JSON protocol's nested input."""
    tree: Tree = {}
    for key, value in params.items():
        node = tree
        *path, last = key.split(".")
        if len(path) >= MAX_DEPTH:
            raise invalid(f"The parameter {key[:100]}… has more than {MAX_DEPTH} parts.")
        for part in path:
            child = node.setdefault(part, {})
            if isinstance(child, str):
                raise invalid(f"The parameter {key} conflicts with {part}.")
            node = child
        if isinstance(node.get(last), dict):
            raise invalid(f"The parameter {key} conflicts with its members.")
        node[last] = value
    return members(tree)


def members(tree: Tree) -> Shape:
    out: Shape = {}
    for key, child in tree.items():
        if key in MAPS and isinstance(child, dict):
            name, key_name, value_name = MAPS[key]
            out[name] = {_leaf(e, key_name): value_of(_child(e, value_name)) for e in numbered(key, child)}
        elif key in LISTS and isinstance(child, dict):
            out[LISTS[key]] = [value_of(e) for e in numbered(key, child)]
        else:
            out[key] = value_of(child)
    return out


def value_of(node: Tree | str) -> object:
    return node if isinstance(node, str) else members(node)


def numbered(key: str, node: Tree) -> list[Tree | str]:
    if not all(natural(k) is not None for k in node):
        raise invalid(f"The parameter {key} must be numbered: {key}.1, {key}.2, …")
    return [node[k] for k in sorted(node, key=int)]


def _child(entry: Tree | str, name: str) -> Tree | str:
    if isinstance(entry, str) or name not in entry:
        raise invalid(f"Each entry needs a {name}.")
    return entry[name]


def _leaf(entry: Tree | str, name: str) -> str:
    value = _child(entry, name)
    if not isinstance(value, str):
        raise invalid(f"{name} must be a single value.")
    return value


def element_items(action: str, shape: Mapping[str, object]) -> str:
    return "".join(element(action, k, v) for k, v in shape.items() if v is not None)


def element(action: str, key: str, value: object) -> str:
    if key in PAIRS and isinstance(value, Mapping):
        tag, key_name, value_name = PAIRS[key]
        return "".join(f"<{tag}><{key_name}>{escape(k)}</{key_name}>{element(action, value_name, v)}</{tag}>"
                       for k, v in value.items())
    if isinstance(value, list):
        tag = ITEMS.get(key) or f"{action}ResultEntry"  # Successful: SendMessageBatchResultEntry, …
        return "".join(element(action, tag, item) for item in value)
    if isinstance(value, Mapping):
        return f"<{key}>{element_items(action, value)}</{key}>"
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    if not text.isprintable() and XML_INVALID.search(text):  # stored before such text was refused
        text = XML_INVALID.sub("\ufffd", text)
    return f"<{key}>{escape(text, ENTITIES)}</{key}>"


def render_error(exc: WonderQError) -> Response:
    fault, message = explain(exc)
    message = XML_INVALID.sub("\ufffd", message)  # it may quote what was refused, control characters too
    rid = request_id()
    kind = "Sender" if fault.sender else "Receiver"
    body = (f'<?xml version="1.0"?><ErrorResponse xmlns="{XMLNS}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(fault.legacy)}</Code><Message>{escape(message)}</Message><Detail/></Error>"
            f"<RequestId>{rid[1].decode()}</RequestId></ErrorResponse>")
    return Response(body.encode(), fault.status, CONTENT_TYPE, (rid, *exc.headers))
