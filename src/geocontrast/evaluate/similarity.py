"""The k most cosine-similar bank rows of every query row, computed one block of query rows at a time.

The dense way, ``(queries @ bank.T).topk(k)``, holds a (queries, bank) matrix: 100,000 test photos against 50,000
labelled ones is 20 GB in float32. Here only a (block, bank) slice exists at a time, sized by ``block_bytes``, so
memory is O(bank) for the slice plus O(queries x k) for the answer. Blocks split query rows only, never the bank:
each row's top-k is taken over its whole row of similarities exactly as the dense matrix would give it, ties
included. faiss-cpu's exact inner-product index measured about 3x faster (bench/knn_blocks.py, one thread, on a
loaded machine) but agrees with the dense top-k on 99.999 % of neighbours, not all (its own summation order moves
near-ties); these blocks give the dense answer exactly and need no further dependency.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

BLOCK_BYTES = 128 * 2**20
"""Bytes of one block of float32 similarities (query rows x bank rows)."""


def block_rows(n_bank: int, block_bytes: int = BLOCK_BYTES) -> int:
    """Query rows per block: as many as fit ``block_bytes`` of float32 similarities against ``n_bank`` rows."""
    return max(1, int(block_bytes) // (4 * max(int(n_bank), 1)))


def top_k_blocks(
    queries: torch.Tensor, bank: torch.Tensor, k: int, exclude_self: bool = False, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(first row, similarity (b, k), index (b, k)) per block of query rows, most similar first.

    ``queries`` (n, D) and ``bank`` (m, D): L2-normalised float32 rows, so the inner product is the cosine.
    ``exclude_self``: the queries are the bank itself and row i is never its own neighbour (k <= m - 1).
    """
    step = block_rows(bank.shape[0], block_bytes)
    for start in range(0, queries.shape[0], step):
        similarity = queries[start : start + step] @ bank.T  # (b, m)
        if exclude_self:
            own = torch.arange(similarity.shape[0])
            similarity[own, own + start] = -float("inf")
        top = similarity.topk(k, dim=1)
        yield start, top.values, top.indices


def top_k_indices(
    queries: torch.Tensor, bank: torch.Tensor, k: int, exclude_self: bool = False, block_bytes: int = BLOCK_BYTES
) -> torch.Tensor:
    """(n, k) bank rows most similar to each query row (:func:`top_k_blocks`, joined)."""
    blocks = [index for _, _, index in top_k_blocks(queries, bank, k, exclude_self, block_bytes)]
    return torch.cat(blocks) if blocks else torch.zeros(0, k, dtype=torch.int64)
