"""The probe's trainable part: SUPERB's weighted layer sum and a small BiLSTM with a CTC output.

Shapes: ``layers`` (num_layers + 1, B, T, D) standardised hidden states, ``lengths`` (B,) valid
frames per row; the output is CTC log-probabilities (B, T, V) over the letter dictionary.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


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


class CtcProbe(nn.Module):
    """Weighted layer sum -> Linear(D, hidden) -> BiLSTM (``lstm_layers`` x ``hidden`` per direction)
    -> Linear(2 * hidden, vocab). The input projection gives every upstream, whatever its width,
    the same downstream network."""

    def __init__(self, num_entries: int, dim: int, vocab: int, hidden: int = 256, lstm_layers: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        self.featurizer = WeightedLayerSum(num_entries)
        self.proj = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=lstm_layers, bidirectional=True, batch_first=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.out = nn.Linear(2 * hidden, vocab)

    def forward(self, layers: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.proj(self.featurizer(layers)))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return F.log_softmax(self.out(self.dropout(y)), dim=-1)
