"""Float inputs/outputs for integer TFLite models: a QUANTIZE op in front of each int8 input and a DEQUANTIZE op
behind each int8 output, so apps feed and read float32 (what TFLiteConverter's inference_input_type=float gives;
litert_torch has no such option and writes the PT2E graph's int8 boundary tensors as the model's I/O)."""
from __future__ import annotations

from pathlib import Path

_INTEGER = ("INT8", "UINT8", "INT16")


def _opcode(model, fb, code: int) -> int:
    """Index of the builtin operator code `code` in the model, added if missing."""
    from ai_edge_litert.tools.flatbuffer_utils import get_builtin_code_from_operator_code

    for index, opcode in enumerate(model.operatorCodes):
        if get_builtin_code_from_operator_code(opcode) == code:
            opcode.version = max(opcode.version, 2)  # version 2: int8 tensors
            return index
    opcode = fb.OperatorCodeT()
    opcode.builtinCode, opcode.deprecatedBuiltinCode, opcode.version = code, min(code, 127), 2
    model.operatorCodes.append(opcode)
    return len(model.operatorCodes) - 1


def _float_twin(model, fb, subgraph, index: int) -> int:
    """A float32 tensor shaped like tensor `index`, taking over its name (the old one gets an `_int8` suffix)."""
    old = subgraph.tensors[index]
    new = fb.TensorT()
    new.name, old.name = old.name, old.name + b"_int8"
    new.shape, new.shapeSignature, new.hasRank = old.shape, old.shapeSignature, old.hasRank
    new.type = fb.TensorType.FLOAT32
    model.buffers.append(fb.BufferT())  # an empty buffer: no constant data
    new.buffer = len(model.buffers) - 1
    subgraph.tensors.append(new)
    return len(subgraph.tensors) - 1


def float_io(path: Path) -> int:
    """Rewrite `path` in place so every quantized integer input/output of every subgraph is float32; returns
    how many boundary tensors were converted. Plain integers (a class-index mask: no scale) stay as they are.
    Signature defs follow the new tensors."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    integer = {getattr(fb.TensorType, name) for name in _INTEGER}
    quantize = _opcode(model, fb, fb.BuiltinOperator.QUANTIZE)
    dequantize = _opcode(model, fb, fb.BuiltinOperator.DEQUANTIZE)
    converted = 0
    for number, subgraph in enumerate(model.subgraphs):
        moved: dict[int, int] = {}
        def quantized(index: int) -> bool:
            tensor = subgraph.tensors[index]
            return tensor.type in integer and tensor.quantization is not None and \
                tensor.quantization.scale is not None and len(tensor.quantization.scale) > 0

        for position, index in enumerate(subgraph.inputs):
            if quantized(index):
                moved[index] = twin = _float_twin(model, fb, subgraph, index)
                subgraph.operators.insert(0, _operator(fb, quantize, twin, index, "Quantize"))
                subgraph.inputs[position] = twin
        for position, index in enumerate(subgraph.outputs):
            if quantized(index):
                moved[index] = twin = _float_twin(model, fb, subgraph, index)
                subgraph.operators.append(_operator(fb, dequantize, index, twin, "Dequantize"))
                subgraph.outputs[position] = twin
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == number:
                for entry in list(signature.inputs or []) + list(signature.outputs or []):
                    entry.tensorIndex = moved.get(entry.tensorIndex, entry.tensorIndex)
        converted += len(moved)
    if converted:
        path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    return converted


def _operator(fb, opcode: int, source: int, target: int, kind: str):
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, [source], [target]
    op.builtinOptionsType = getattr(fb.BuiltinOptions, f"{kind}Options")
    op.builtinOptions = getattr(fb, f"{kind}OptionsT")()
    return op
