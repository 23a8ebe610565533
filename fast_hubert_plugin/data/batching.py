"""Length-sorted batching of utterances under a padded-size budget."""
from typing import List, Sequence


def length_batches(frames: Sequence[int], max_tokens: int) -> List[List[int]]:
    """Indices grouped longest first so that len(batch) x longest <= max_tokens (padded frames)."""
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive (fbank frames per batch), got {max_tokens}")
    order = sorted(range(len(frames)), key=lambda i: (-frames[i], i))
    batches, current = [], []
    for i in order:
        longest = frames[current[0]] if current else frames[i]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
