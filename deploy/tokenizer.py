"""BERT WordPiece tokenization in plain Python + numpy (no torch, no tokenizers package): what the device
runs before the exported text encoder, reproducing the Hugging Face BertTokenizer of all-MiniLM-L6-v2
(uncased: lower-case, accents stripped, punctuation split, greedy longest-match WordPiece, [UNK] for
words it cannot piece together). The vocab file is the standard one-token-per-line vocab.txt that the
Swift, Kotlin and JS ports of BertTokenizer read."""
from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np

from edgeseg.errors import UserError


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2B73F or 0x2B740 <= code <= 0x2B81F or 0x2B820 <= code <= 0x2CEAF
            or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def pack(texts: list[str], tokens, max_length: int, pad: int, first: int, last: int, reserved: int,
         filler: int) -> tuple[np.ndarray, list[str]]:
    """ids [N, max_length] int32: first, `reserved` filler slots (learned context), the text's tokens, last,
    then pad; returns the ids and the texts that had to be truncated (the caller says so, never silently)."""
    ids = np.full((len(texts), max_length), pad, dtype=np.int32)
    truncated = []
    room = max_length - 2 - reserved
    for row, text in enumerate(texts):
        pieces = tokens(text)
        if len(pieces) > room:
            truncated.append(text)
            pieces = pieces[:room]
        sequence = [first, *([filler] * reserved), *pieces, last]
        ids[row, : len(sequence)] = sequence
    return ids, truncated


class WordPieceTokenizer:
    """vocab.txt -> token ids; `encode` pads/truncates to `max_length` with [CLS] ... [SEP]."""

    def __init__(self, vocab: str | Path, lowercase: bool = True, max_length: int = 32) -> None:
        path = Path(vocab)
        if not path.is_file():
            raise UserError(f"tokenizer vocabulary {path} not found (the text encoder folder is incomplete)")
        tokens = path.read_text(encoding="utf-8").splitlines()
        self.vocab = {token: index for index, token in enumerate(tokens)}
        self.lowercase, self.max_length = lowercase, max_length
        try:
            self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]
            self.pad, self.unk = self.vocab["[PAD]"], self.vocab["[UNK]"]
        except KeyError as exc:
            raise UserError(f"{path} is not a BERT vocabulary (no {exc.args[0]})") from exc

    def _basic(self, text: str) -> list[str]:
        cleaned = []
        for char in text:
            code = ord(char)
            if code == 0 or code == 0xFFFD or (unicodedata.category(char).startswith("C") and char not in "\t\n\r"):
                continue
            cleaned.append(f" {char} " if _is_cjk(code) else (" " if char.isspace() else char))
        words = []
        for word in "".join(cleaned).split():
            if self.lowercase:
                word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
            current = ""
            for char in word:
                if _is_punctuation(char):
                    words += [current, char] if current else [char]
                    current = ""
                else:
                    current += char
            if current:
                words.append(current)
        return words

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = ("##" if start else "") + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces

    def tokens(self, text: str) -> list[int]:
        """WordPiece ids of `text` without special tokens."""
        return [piece for word in self._basic(text) for piece in self._wordpiece(word)]

    def encode(self, texts: list[str], reserved: int = 0, placeholder: int | None = None) -> tuple[np.ndarray, list[str]]:
        """ids [N, max_length] int32: [CLS] (+ `reserved` placeholder slots) tokens [SEP] [PAD]...; returns
        the ids and the texts that had to be truncated (the caller says so, never silently)."""
        filler = placeholder if placeholder is not None else self.unk
        return pack(texts, self.tokens, self.max_length, self.pad, self.cls, self.sep, reserved, filler)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level BPE: each utf-8 byte -> a printable unicode character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


def _word_pattern():
    """CLIP's pre-tokenizer: the `regex` package where installed (exact \\p{L}/\\p{N} classes), else the
    standard library's closest form (letters = [^\\W\\d_], numbers = \\d)."""
    specials = r"<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|"
    try:
        import regex

        return regex.compile(specials + r"[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", regex.IGNORECASE)
    except ImportError:
        import re

        return re.compile(specials + r"[^\W\d_]+|\d|[^\s\w]+|_+", re.IGNORECASE)


class ClipBPETokenizer:
    """open_clip's SimpleTokenizer (lower-case cleaning) in plain Python + numpy, from the standard
    vocab.json + merges.txt pair that the Hugging Face CLIPTokenizer and its Swift/Kotlin/JS ports read.
    `encode` gives [N, context_length] int32: <start_of_text> tokens <end_of_text> then zeros. ftfy's
    mojibake repair is not applied (a no-op for typed names)."""

    def __init__(self, vocab: str | Path, merges: str | Path, max_length: int = 77) -> None:
        import json

        for path in (Path(vocab), Path(merges)):
            if not path.is_file():
                raise UserError(f"tokenizer file {path} not found (the text encoder folder is incomplete)")
        self.vocab: dict[str, int] = json.loads(Path(vocab).read_text(encoding="utf-8"))
        lines = [line for line in Path(merges).read_text(encoding="utf-8").splitlines()
                 if line and not line.startswith("#version")]
        self.ranks = {tuple(line.split()): rank for rank, line in enumerate(lines)}
        try:
            self.start, self.end = self.vocab["<start_of_text>"], self.vocab["<end_of_text>"]
        except KeyError as exc:
            raise UserError(f"{vocab} is not a CLIP vocabulary (no {exc.args[0]})") from exc
        self.max_length, self.pad, self.unk = max_length, 0, None
        self.byte_encoder = bytes_to_unicode()
        self.pattern = _word_pattern()
        self._cache: dict[str, list[str]] = {}

    @staticmethod
    def clean(text: str) -> str:
        import html

        return " ".join(html.unescape(html.unescape(text)).strip().split()).lower()

    def _bpe(self, token: str) -> list[str]:
        if token in self._cache:
            return self._cache[token]
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(a, b) for a, b in zip(word, word[1:])}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self._cache[token] = word
        return word

    def tokens(self, text: str) -> list[int]:
        """BPE ids of `text` without the start/end tokens."""
        ids = []
        for piece in self.pattern.findall(self.clean(text)):
            encoded = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            ids += [self.vocab[part] for part in ([encoded] if encoded in ("<start_of_text>", "<end_of_text>")
                                                  else self._bpe(encoded))]
        return ids

    def encode(self, texts: list[str], reserved: int = 0, placeholder: int | None = None) -> tuple[np.ndarray, list[str]]:
        """ids [N, max_length] int32 (zeros after <end_of_text>); returns the ids and the texts that were
        truncated. `reserved` slots after <start_of_text> hold `placeholder` (learned context tokens)."""
        return pack(texts, self.tokens, self.max_length, 0, self.start, self.end, reserved, placeholder or 0)


def write_clip_vocab(bpe_gz: str | Path, folder: Path) -> None:
    """open_clip's bpe_simple_vocab_16e6.txt.gz -> vocab.json + merges.txt (the Hugging Face CLIP format)."""
    import gzip
    import json

    merges = gzip.open(bpe_gz).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<start_of_text>", "<end_of_text>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False),
                                       encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                       encoding="utf-8")
