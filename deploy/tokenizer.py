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
        ids = np.full((len(texts), self.max_length), self.pad, dtype=np.int32)
        truncated = []
        room = self.max_length - 2 - reserved
        for row, text in enumerate(texts):
            pieces = self.tokens(text)
            if len(pieces) > room:
                truncated.append(text)
                pieces = pieces[:room]
            sequence = [self.cls, *([placeholder if placeholder is not None else self.unk] * reserved), *pieces, self.sep]
            ids[row, : len(sequence)] = sequence
        return ids, truncated
