"""A CLIP byte-level BPE vocabulary in which every caption word is one token.

Every byte stays a token, so any text tokenizes; the merges are learned from the caption
words only, which is what lets a two-layer text encoder learn the words instead of spelling them.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from transformers import CLIPTokenizer
from transformers.models.clip.tokenization_clip import bytes_to_unicode

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"


def _symbols(word: str) -> tuple[str, ...]:
    byte_chars = bytes_to_unicode()
    chars = [byte_chars[b] for b in word.encode("utf-8")]
    return (*chars[:-1], chars[-1] + "</w>")


def learn_merges(words: Iterable[str]) -> list[tuple[str, str]]:
    """Greedy BPE over the words until each is a single symbol; ties break alphabetically."""
    spelled = {word: _symbols(word) for word in sorted(set(words))}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols in spelled.values():
            pairs.update(itertools.pairwise(symbols))
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for word, symbols in spelled.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            spelled[word] = tuple(merged)


def byte_vocab(merges: Iterable[tuple[str, str]] = ()) -> dict[str, int]:
    """Every byte, alone and word-final, then the merged symbols, then CLIP's specials last.

    The specials come last so that CLIP's pooling (the highest id marks the end of the prompt) finds them.
    """
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    known = set(tokens)
    for left, right in merges:
        if left + right not in known:
            tokens.append(left + right)
            known.add(left + right)
    tokens += [BOS_TOKEN, EOS_TOKEN]
    return {token: i for i, token in enumerate(tokens)}


def write_tokenizer(work_dir: Path, max_length: int, merges: list[tuple[str, str]] | None = None) -> CLIPTokenizer:
    """CLIPTokenizer reads its vocabulary from files only, so write them first."""
    merges = merges or []
    vocab_file, merges_file = work_dir / "vocab.json", work_dir / "merges.txt"
    vocab_file.write_text(json.dumps(byte_vocab(merges), ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    merges_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return CLIPTokenizer(
        vocab_file=str(vocab_file),
        merges_file=str(merges_file),
        model_max_length=max_length,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
    )
