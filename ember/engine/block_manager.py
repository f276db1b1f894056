"""The paged KV cache's bookkeeping: which block holds what, who holds it, and the prefix
cache (full blocks found again by a hash chained over their own and all earlier tokens)."""
from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict

from ember.engine.sequence import Sequence


def chained_block_hash(parent: bytes, token_ids: list[int]) -> bytes:
    return hashlib.sha256(parent + array("q", token_ids).tobytes()).digest()


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.ref_counts = [0] * num_blocks
        self.block_hash: list[bytes | None] = [None] * num_blocks
        self.cached: dict[bytes, int] = {}
        # Blocks nobody holds, least recently freed first: eviction takes from the front, so
        # cached prefixes used lately survive longest.
        self.free_queue: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self.prefix_queries = 0
        self.prefix_hits = 0

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_queue)

    @property
    def usage(self) -> float:
        return 1.0 - self.num_free_blocks / self.num_blocks

    def blocks_needed(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def _hash_full_blocks(self, seq: Sequence, upto_tokens: int) -> None:
        bs = self.block_size
        while (len(seq.block_hashes) + 1) * bs <= upto_tokens:
            i = len(seq.block_hashes)
            parent = seq.block_hashes[-1] if seq.block_hashes else b""
            seq.block_hashes.append(chained_block_hash(parent, seq.token_ids[i * bs:(i + 1) * bs]))

    def find_cached_prefix(self, seq: Sequence) -> list[int]:
        """Blocks already holding a prefix of `seq`. At least the last token is always left to
        compute, since its logits are needed."""
        if not self.enable_prefix_caching or seq.params.prompt_logprobs is not None:
            return []
        self._hash_full_blocks(seq, seq.num_tokens - 1)
        hits = []
        for h in seq.block_hashes[:(seq.num_tokens - 1) // self.block_size]:
            block = self.cached.get(h)
            if block is None:
                break
            hits.append(block)
        return hits

    def allocate_slots(self, seq: Sequence, num_new_tokens: int, cached_prefix: list[int] = ()) -> bool:
        """Grow `seq`'s block table to hold its computed tokens plus `num_new_tokens`, first
        taking `cached_prefix` (from find_cached_prefix). False, changing nothing, if the free
        blocks do not suffice."""
        if not cached_prefix and seq.block_table:
            # The common decode case: the new tokens still fit in the blocks already held.
            need = -(-(seq.num_computed_tokens + num_new_tokens) // self.block_size) - len(seq.block_table)
            if need <= 0:
                return True
        cached_prefix = list(cached_prefix)
        total = seq.num_computed_tokens + len(cached_prefix) * self.block_size + num_new_tokens
        need = self.blocks_needed(total) - len(seq.block_table) - len(cached_prefix)
        reusable_free = sum(1 for b in cached_prefix if self.ref_counts[b] == 0)
        if need > self.num_free_blocks - reusable_free:
            return False
        if not seq.block_table:
            self.prefix_queries += seq.num_tokens
            self.prefix_hits += len(cached_prefix) * self.block_size
        for b in cached_prefix:
            if self.ref_counts[b] == 0:
                del self.free_queue[b]
            self.ref_counts[b] += 1
            seq.block_table.append(b)
        seq.num_computed_tokens += len(cached_prefix) * self.block_size
        seq.num_cached_tokens = max(seq.num_cached_tokens, len(cached_prefix) * self.block_size)
        for _ in range(need):
            b, _ = self.free_queue.popitem(last=False)
            if self.block_hash[b] is not None:
                # Evicting a cached block: its content is about to be overwritten.
                if self.cached.get(self.block_hash[b]) == b:
                    del self.cached[self.block_hash[b]]
                self.block_hash[b] = None
            self.ref_counts[b] = 1
            seq.block_table.append(b)
        return True

    def cache_computed_blocks(self, seq: Sequence) -> None:
        """Register `seq`'s blocks that are now full and computed, for later requests to reuse."""
        if not self.enable_prefix_caching:
            return
        # Only tokens whose ids are known can be hashed (a pending one is still on the device).
        full = min(seq.num_computed_tokens, len(seq.token_ids)) // self.block_size
        if full <= seq.num_registered_blocks:
            return
        self._hash_full_blocks(seq, full * self.block_size)
        for i in range(seq.num_registered_blocks, full):
            b = seq.block_table[i]
            if self.block_hash[b] is not None:
                continue
            h = seq.block_hashes[i]
            self.block_hash[b] = h
            self.cached.setdefault(h, b)
        seq.num_registered_blocks = full

    def free(self, seq: Sequence) -> None:
        # Tail blocks go first into the free queue, so they are evicted before the shared
        # prefix blocks that other requests are most likely to hit.
        for b in reversed(seq.block_table):
            self.ref_counts[b] -= 1
            if self.ref_counts[b] == 0:
                self.free_queue[b] = None
        seq.block_table = []
        seq.num_computed_tokens = 0
        seq.num_registered_blocks = 0

    def reset_prefix_hit_counters(self) -> tuple[int, int]:
        counts = (self.prefix_hits, self.prefix_queries)
        self.prefix_hits = self.prefix_queries = 0
        return counts
