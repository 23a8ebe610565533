"""Criterion ``fast_hubert``: cross-entropy of the linear heads on masked frames.

loss = pred_masked_weight * sum CE(masked) + pred_nomask_weight * sum CE(unmasked), summed over
label sets and supervised layers (ILS). ``sample_size`` (what fairseq divides the loss by) counts
every (head, frame) pair whose CE is in the loss: masked frames, plus unmasked frames when
``pred_nomask_weight > 0`` (as fairseq's ``hubert`` criterion and the official Fast-HuBERT ILS
count them). Logs loss and accuracy per supervised layer.

The model returns a ``FastHubertOutput`` (models/fast_hubert.py): one ``HeadOutput`` per (label
set, supervised block) with the ``logits`` and ``targets`` of its masked and of its unmasked frames
(None where not computed). The criterion reads those fields by name; the model does the frame
selection, the label picking and ``logit_temp``, the criterion only the cross-entropy and the logs.

Nothing here waits for the device: losses and correct counts are logged as detached 0-dim tensors
(as fairseq's own criterions log ``loss.data``), frame counts and ``sample_size`` are tensor sizes,
known on the host. fairseq reads the values when it reduces the logs (its summed fast path
all-reduces them as they are; ``metrics`` turns them into numbers when it prints).
"""

import math
from dataclasses import dataclass, field
from typing import List

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass


@dataclass
class FastHubertCriterionConfig(FairseqDataclass):
    pred_masked_weight: float = field(default=1.0, metadata={"help": "weight of the CE on masked frames"})
    pred_nomask_weight: float = field(
        default=0.0, metadata={"help": "weight of the CE on unmasked frames (0: their logits are not computed)"}
    )
    log_keys: List[str] = field(
        default_factory=list, metadata={"help": "numeric fields of the model output (FastHubertOutput) to log"}
    )


def head_name(net_output, head) -> str:
    """Log name of a head: 'L12' (block 12) with one label set, 't1_L12' (label set 1) with several."""
    if net_output.num_label_sets == 1:
        return f"L{head.layer}"
    return f"t{head.label_set}_L{head.layer}"


@register_criterion("fast_hubert", dataclass=FastHubertCriterionConfig)
class FastHubertCriterion(FairseqCriterion):
    def __init__(self, task, pred_masked_weight: float = 1.0, pred_nomask_weight: float = 0.0, log_keys=None):
        super().__init__(task)
        self.pred_masked_weight = pred_masked_weight
        self.pred_nomask_weight = pred_nomask_weight
        self.log_keys = [] if log_keys is None else log_keys

    def forward(self, model, sample, reduce=True):
        net_output = model(
            target_list=sample["target_list"],
            compute_masked=self.pred_masked_weight > 0,
            compute_unmasked=self.pred_nomask_weight > 0,
            **sample["net_input"],
        )
        loss = 0.0
        sample_size = 0
        logging_output = {}
        for kind, weight in (("m", self.pred_masked_weight), ("u", self.pred_nomask_weight)):
            for head in net_output.heads:
                predictions = head.masked if kind == "m" else head.unmasked
                if predictions is None:
                    continue
                logits, targets = predictions
                ce = F.cross_entropy(logits.float(), targets, reduction="sum")
                name = head_name(net_output, head)
                logging_output[f"loss_{kind}_{name}"] = ce.detach()
                with torch.no_grad():
                    logging_output[f"correct_{kind}_{name}"] = (logits.argmax(-1) == targets).sum()
                logging_output[f"count_{kind}_{name}"] = targets.numel()  # a size: known on the host
                if weight > 0:
                    loss = loss + weight * ce
                    sample_size += targets.numel()
        if not torch.is_tensor(loss):
            raise RuntimeError("no loss term: every head was skipped (check pred_*_weight and skip_masked/skip_nomask)")
        for key in self.log_keys:
            value = getattr(net_output, key, None)
            if value is not None:
                logging_output[key] = value.detach() if torch.is_tensor(value) else float(value)
        logging_output.update(
            {
                "loss": loss.detach(),
                "ntokens": sample_size,
                "nsentences": sample["id"].numel(),
                "sample_size": sample_size,
            }
        )
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        total = lambda key: sum(log.get(key, 0) for log in logging_outputs)  # noqa: E731
        sample_size = total("sample_size")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3)
        keys = {k for log in logging_outputs for k in log}
        for key in sorted(keys):
            if key.startswith("loss_"):
                count = total("count_" + key[len("loss_") :])
                metrics.log_scalar(key, total(key) / max(count, 1) / math.log(2), count, round=3)
            elif key.startswith("correct_"):
                name = key[len("correct_") :]
                metrics.log_scalar("acc_" + name, total(key) / max(total("count_" + name), 1), round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        """Every logged value is a sum (losses, counts, sizes) and reduce_metrics only divides sums:
        fairseq may add the logs of all ranks with one all-reduce (its fast path, and the only one on CPU)."""
        return True
