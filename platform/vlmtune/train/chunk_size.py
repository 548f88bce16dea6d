"""How many supervised positions one chunk of the chunked loss holds (pure: `vlmtune plan` sizes it too)."""

from __future__ import annotations

CHUNK_LOGITS = 2**26
"""Logits per chunk (64 Mi: 256 MiB in fp32): about 2,000 rows of a 32k vocabulary, enough rows that the head's
matmul runs at full speed, few enough that a chunk's logits, their fp32 copy and gradients stay under 1 GiB."""
MIN_CHUNK_ROWS = 256


def chunk_rows(vocab: int) -> int:
    """Supervised positions per chunk for a vocabulary of `vocab` tokens."""
    return max(MIN_CHUNK_ROWS, CHUNK_LOGITS // vocab)
