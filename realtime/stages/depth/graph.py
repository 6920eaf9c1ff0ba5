"""The depth model's last layer, taken off its ONNX graph so it can run without channel padding.

TCMonoDepth ends in ``Conv(24 -> 1, 3x3) -> Relu -> Resize(x2, linear)``. onnxruntime's
fastest layout (NCHWc, chosen at ``ORT_ENABLE_ALL``) computes convolutions in blocks of 16
channels on AVX-512 (8 on AVX2), so that single output channel costs as much as 16, and the
x2 upsampling after it runs on all 16 too: a large share of onnxruntime's time for the model
(docs/depth.md has the numbers). Cut at the ``Conv``'s input, onnxruntime runs everything else as
before and a small kernel (:func:`shaders.depth.final_conv_up2`) does the last layer: the same
arithmetic, without the padding.

ONNX files are protocol buffers. Only the few fields needed to find, cut and re-point the
tail are read here (the wire format is simple and stable); everything else is copied through
byte for byte, so nothing else in the model can change. Any file that does not end exactly
like this gives ``None`` and is run whole.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

# field numbers from onnx.proto (ModelProto.graph, GraphProto.*, NodeProto.*, ...)
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_OUTPUT = 1, 5, 12
_NODE_INPUT, _NODE_OUTPUT, _NODE_OP, _NODE_ATTRIBUTE = 1, 2, 4, 5
_ATTR_NAME, _ATTR_I, _ATTR_S, _ATTR_INTS = 1, 3, 4, 8
_TENSOR_DIMS, _TENSOR_TYPE, _TENSOR_FLOATS, _TENSOR_NAME, _TENSOR_RAW = 1, 2, 4, 8, 9
_VALUE_NAME, _VALUE_TYPE, _TYPE_TENSOR, _TENSOR_ELEM = 1, 2, 1, 1
_FLOAT = 1
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class FinalConv:
    """A model without its last layer (``head``: serialized ONNX whose one output is the
    ``(1, C, h, w)`` features) and that layer: ``relu(conv3x3(features, weight) + bias)``,
    then bilinear x2 (half-pixel centres)."""

    head: bytes
    weight: np.ndarray  # (C, 3, 3) float32
    bias: np.float32


def split_final_conv(model: bytes) -> FinalConv | None:
    """The model cut before its final 3x3 convolution, or None if it does not end that way."""
    try:
        return _split(model)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        return None  # not a protobuf we understand: run the model whole


def _split(model: bytes) -> FinalConv | None:
    top = list(_fields(model))
    graphs = [v for f, t, v in top if f == _MODEL_GRAPH and t == _BYTES]
    if len(graphs) != 1:
        return None
    graph = list(_fields(graphs[0]))
    outputs = [_value_name(v) for f, t, v in graph if f == _GRAPH_OUTPUT]
    nodes = [_Node(v) for f, t, v in graph if f == _GRAPH_NODE]
    if len(outputs) != 1:
        return None
    producer = {o: n for n in nodes for o in n.outputs}
    resize = producer.get(outputs[0])
    if resize is None or resize.op not in ("Resize", "Upsample") or len(resize.outputs) != 1:
        return None
    coordinates = resize.attr_s("coordinate_transformation_mode", b"half_pixel")
    if resize.attr_s("mode") != b"linear" or coordinates != b"half_pixel":
        return None
    relu = producer.get(resize.inputs[0])
    if relu is None or relu.op != "Relu":
        return None
    conv = producer.get(relu.inputs[0])
    if conv is None or conv.op != "Conv" or len(conv.inputs) != 3:
        return None
    if conv.attr_ints("kernel_shape") != [3, 3] or conv.attr_ints("pads") != [1, 1, 1, 1] or \
            conv.attr_ints("strides", [1, 1]) != [1, 1] or conv.attr_ints("dilations", [1, 1]) != [1, 1] or \
            conv.attr_i("group", 1) != 1 or conv.attr_s("auto_pad", b"NOTSET") != b"NOTSET":
        return None
    tail = {id(conv), id(relu), id(resize)}
    for n in nodes:  # the cut tensors feed nothing else
        if id(n) not in tail and (set(n.inputs) & {conv.outputs[0], relu.outputs[0]}):
            return None
    inits = {}
    for f, t, v in graph:
        if f == _GRAPH_INITIALIZER:
            name, arr = _tensor(v)
            if name in (conv.inputs[1], conv.inputs[2]):
                inits[name] = arr
    weight, bias = inits.get(conv.inputs[1]), inits.get(conv.inputs[2])
    if weight is None or bias is None or weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (3, 3) \
            or bias.shape != (1,):
        return None
    if any(conv.inputs[1] in n.inputs or conv.inputs[2] in n.inputs for n in nodes if id(n) not in tail):
        return None

    features = conv.inputs[0]
    head = bytearray()
    for f, t, v in graph:
        if f == _GRAPH_NODE and any(v is n.raw for n in (conv, relu, resize)):
            continue
        if f == _GRAPH_INITIALIZER and _tensor_name(v) in (conv.inputs[1], conv.inputs[2]):
            continue
        if f == _GRAPH_OUTPUT:
            # a float tensor of unstated shape: onnxruntime infers it
            elem = _key(_TENSOR_ELEM, _VARINT) + _varint(_FLOAT)
            v = _bytes(_VALUE_NAME, features.encode()) + _bytes(_VALUE_TYPE, _bytes(_TYPE_TENSOR, elem))
        head += _encode(f, t, v)
    out = bytearray()
    for f, t, v in top:
        out += _encode(f, t, bytes(head) if f == _MODEL_GRAPH else v)
    return FinalConv(bytes(out), np.ascontiguousarray(weight[0], np.float32), np.float32(bias[0]))


class _Node:
    def __init__(self, raw: memoryview) -> None:
        self.raw = raw
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.op = ""
        self.attrs: dict[str, list[tuple[int, int, object]]] = {}
        for f, t, v in _fields(raw):
            if f == _NODE_INPUT:
                self.inputs.append(bytes(v).decode())
            elif f == _NODE_OUTPUT:
                self.outputs.append(bytes(v).decode())
            elif f == _NODE_OP:
                self.op = bytes(v).decode()
            elif f == _NODE_ATTRIBUTE:
                fs = list(_fields(v))
                name = next((bytes(x).decode() for g, _, x in fs if g == _ATTR_NAME), "")
                self.attrs[name] = fs

    def attr_i(self, name: str, default: int | None = None) -> int | None:
        fs = self.attrs.get(name)
        if fs is None:
            return default
        return next((x for g, t, x in fs if g == _ATTR_I and t == _VARINT), None)

    def attr_s(self, name: str, default: bytes | None = None) -> bytes | None:
        fs = self.attrs.get(name)
        if fs is None:
            return default
        return next((bytes(x) for g, t, x in fs if g == _ATTR_S and t == _BYTES), None)

    def attr_ints(self, name: str, default: list[int] | None = None) -> list[int] | None:
        fs = self.attrs.get(name)
        if fs is None:
            return default
        out: list[int] = []
        for g, t, x in fs:
            if g == _ATTR_INTS and t == _VARINT:
                out.append(x)
            elif g == _ATTR_INTS and t == _BYTES:  # packed
                i = 0
                while i < len(x):
                    n, i = _read_varint(x, i)
                    out.append(n)
        return out


def _tensor_name(raw: memoryview) -> str:
    return next((bytes(v).decode() for f, t, v in _fields(raw) if f == _TENSOR_NAME), "")


def _tensor(raw: memoryview) -> tuple[str, np.ndarray | None]:
    dims: list[int] = []
    name, dtype, data, floats = "", None, None, None
    for f, t, v in _fields(raw):
        if f == _TENSOR_DIMS and t == _VARINT:
            dims.append(v)
        elif f == _TENSOR_DIMS and t == _BYTES:
            i = 0
            while i < len(v):
                n, i = _read_varint(v, i)
                dims.append(n)
        elif f == _TENSOR_TYPE:
            dtype = v
        elif f == _TENSOR_NAME:
            name = bytes(v).decode()
        elif f == _TENSOR_RAW:
            data = np.frombuffer(bytes(v), "<f4")
        elif f == _TENSOR_FLOATS and t == _BYTES:
            floats = np.frombuffer(bytes(v), "<f4")
    values = data if data is not None else floats
    if dtype != _FLOAT or values is None or values.size != int(np.prod(dims)):
        return name, None  # external data, another type, ...: not ours to read
    return name, values.astype(np.float32).reshape(dims)


def _value_name(raw: memoryview) -> str:
    return next((bytes(v).decode() for f, t, v in _fields(raw) if f == _VALUE_NAME), "")


# -- protobuf wire format -------------------------------------------------------------------

def _read_varint(b: memoryview | bytes, i: int) -> tuple[int, int]:
    r = shift = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return r, i
        if shift > 63:
            raise ValueError("varint too long")


def _fields(b: bytes | memoryview):
    """(field number, wire type, value) of each field: an int for varints, a memoryview otherwise."""
    b = memoryview(b)
    i, n = 0, len(b)
    while i < n:
        key, i = _read_varint(b, i)
        f, t = key >> 3, key & 7
        if t == _VARINT:
            v, i = _read_varint(b, i)
        elif t == _FIXED64:
            v, i = b[i:i + 8], i + 8
        elif t == _FIXED32:
            v, i = b[i:i + 4], i + 4
        elif t == _BYTES:
            size, i = _read_varint(b, i)
            v, i = b[i:i + size], i + size
        else:
            raise ValueError(f"unsupported wire type {t}")
        if i > n:
            raise ValueError("truncated field")
        yield f, t, v


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _bytes(field: int, payload: bytes) -> bytes:
    return _key(field, _BYTES) + _varint(len(payload)) + payload


def _encode(field: int, wire: int, value) -> bytes:
    if wire == _VARINT:
        return _key(field, wire) + _varint(value)
    if wire == _BYTES:
        return _bytes(field, bytes(value))
    return _key(field, wire) + bytes(value)
