"""fairseq's wav2vec 2.0 / HuBERT Transformer encoder, returning chosen layers by absolute index.

fairseq's ``TransformerEncoder.extract_features`` lists only the layers that survived layerdrop,
so "layer 4" of that list drifts between steps (the official Fast-HuBERT ILS bug). Here the
hidden state after block i (1-based) is recorded whether block i ran or was dropped; a dropped
block passes its input through, exactly as the network computes.

Which blocks are dropped is drawn from torch's generator, which fairseq seeds with
``common.seed`` + update before every update (numpy's global state, which fairseq's encoder uses,
is not restored by a checkpoint): a resumed run drops the blocks an uninterrupted one drops.
"""

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from fairseq.models.wav2vec.utils import pad_to_multiple
from fairseq.models.wav2vec.wav2vec2 import TransformerEncoder

from .positional_conv import positional_conv


def layerdrop_draw() -> float:
    """A uniform draw in [0, 1) from torch's global generator (block dropped when <= layerdrop)."""
    return float(torch.rand(()))


class LayerOutputEncoder(TransformerEncoder):
    # The positional convolution as a batched matrix product (positional_conv.py): None = on CUDA only.
    pos_conv_as_matmul = None

    def extract_features(
        self,
        x: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
        tgt_layer: Optional[int] = None,
        min_layer: int = 0,
        corpus_key=None,
        return_layers: Sequence[int] = (),
    ) -> Tuple[torch.Tensor, Dict[int, torch.Tensor]]:
        """x: (B, T, C); padding_mask: (B, T) bool or None; tgt_layer: 0-based block to stop after.

        Returns x (B, T, C) after ``tgt_layer`` (or the last block) and a dict mapping each
        1-based block index in ``return_layers`` to its output (B, T, C).
        """
        if padding_mask is not None:  # fairseq's index_put(x, padding_mask, 0), without boolean indexing
            x = x.masked_fill(padding_mask.unsqueeze(-1), 0)
        as_matmul = x.is_cuda if self.pos_conv_as_matmul is None else self.pos_conv_as_matmul
        x = x + positional_conv(self.pos_conv, x.transpose(1, 2), as_matmul).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x, pad_length = pad_to_multiple(x, self.required_seq_len_multiple, dim=-2, value=0)
        if pad_length > 0:
            if padding_mask is None:
                padding_mask = x.new_zeros(x.shape[:2], dtype=torch.bool)
                padding_mask[:, -pad_length:] = True
            else:
                padding_mask, _ = pad_to_multiple(padding_mask, self.required_seq_len_multiple, dim=-1, value=True)
        x = F.dropout(x, p=self.dropout, training=self.training)
        x = x.transpose(0, 1)  # T x B x C

        wanted = set(return_layers)
        capture = wanted | ({tgt_layer + 1} if tgt_layer is not None else set())
        last = len(self.layers) if tgt_layer is None else max(capture)
        outputs: Dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.layers[:last]):
            dropped = self.training and self.layerdrop > 0 and layerdrop_draw() <= self.layerdrop
            if not dropped:
                x, _ = layer(x, self_attn_padding_mask=padding_mask, need_weights=False)
            if i + 1 in capture:
                outputs[i + 1] = x
        out = outputs[tgt_layer + 1] if tgt_layer is not None else x

        def unpad(t: torch.Tensor) -> torch.Tensor:
            t = t.transpose(0, 1)  # B x T x C
            return t[:, :-pad_length] if pad_length > 0 else t

        return unpad(out), {k: unpad(v) for k, v in outputs.items() if k in wanted}
