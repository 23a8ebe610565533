"""The probe's trainable part: SUPERB's weighted layer sum and a small BiLSTM with a CTC output.

Shapes: ``layers`` (num_layers + 1, B, T, D) standardised hidden states, ``lengths`` (B,) valid
frames per row; the output is CTC log-probabilities (B, T, V) over the letter dictionary.
"""

import torch
import torch.nn.functional as F
from torch import nn


class WeightedLayerSum(nn.Module):
    """sum_l softmax(w)_l * h_l over all hidden states, w learned, starting uniform (SUPERB)."""

    def __init__(self, num_entries: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_entries))

    def layer_weights(self) -> torch.Tensor:
        return F.softmax(self.weights, dim=0)

    def forward(self, layers: torch.Tensor) -> torch.Tensor:
        """(L + 1, B, T, D) -> (B, T, D)."""
        if layers.shape[0] != self.weights.shape[0]:
            raise ValueError(f"{layers.shape[0]} layers but {self.weights.shape[0]} layer weights")
        return torch.einsum("l,lbtd->btd", self.layer_weights(), layers)


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` frames of each row of (B, T, D); padding stays at the end."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    n = lengths.to(x.device)[:, None]
    index = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, index[..., None].expand(-1, -1, x.shape[2]))


class BiLSTM(nn.Module):
    """A stacked bidirectional LSTM on a padded batch whose valid frames never see the padding.

    Each layer runs one unidirectional LSTM forwards and one on the valid frames reversed, so
    trailing padding reaches neither (the padded, unpacked batch is several times faster to train
    on a CPU than a PackedSequence of unequal lengths, and gives the same valid outputs).
    x: (B, T, D), lengths: (B,) -> (B, T, 2 * hidden); frames past a row's length are undefined.
    """

    def __init__(self, input_size: int, hidden: int, num_layers: int, dropout: float):
        super().__init__()
        sizes = [input_size] + [2 * hidden] * (num_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(n, hidden, batch_first=True) for n in sizes)
        self.backward_lstms = nn.ModuleList(nn.LSTM(n, hidden, batch_first=True) for n in sizes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for i, (fwd, bwd) in enumerate(zip(self.forward_lstms, self.backward_lstms)):
            if i > 0:
                x = self.dropout(x)
            ahead, _ = fwd(x)
            behind, _ = bwd(reverse_valid(x, lengths))
            x = torch.cat([ahead, reverse_valid(behind, lengths)], dim=-1)
        return x


class CtcProbe(nn.Module):
    """Weighted layer sum -> Linear(D, hidden) -> BiLSTM (``lstm_layers`` x ``hidden`` per direction)
    -> Linear(2 * hidden, vocab). The input projection gives every upstream, whatever its width,
    the same downstream network."""

    def __init__(
        self, num_entries: int, dim: int, vocab: int, hidden: int = 128, lstm_layers: int = 2, dropout: float = 0.2
    ):
        super().__init__()
        self.featurizer = WeightedLayerSum(num_entries)
        self.proj = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.lstm = BiLSTM(hidden, hidden, lstm_layers, dropout)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, layers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(L + 1, B, T, D), (B,) -> CTC log-probabilities (B, T, V), valid up to each row's length."""
        x = self.dropout(self.proj(self.featurizer(layers)))
        return F.log_softmax(self.out(self.dropout(self.lstm(x, lengths))), dim=-1)
