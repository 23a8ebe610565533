"""Counts, on the CPU, the calls that would make the host wait for a CUDA device.

On a GPU the host queues kernels and runs ahead; a call that needs a value (``.item()``, ``bool(t)``),
an output whose size depends on the values (``nonzero``, ``hidden[mask]``, ``masked_select``,
``unique``, ``repeat_interleave`` without ``output_size``) or a copy to the host (``.cpu()``,
``.tolist()``, ``.numpy()``) stops it until the device has caught up (what
``torch.cuda.set_sync_debug_mode("error")`` reports there). Two torch modes watch a block of code:
a function mode sees the Python calls, a dispatch mode the aten ops they become (backward included).

A tensor made on the host stays there on a GPU too: one from a factory call without ``device=``
(``torch.rand(())`` for a layerdrop draw), or computed from such tensors only; reading it costs nothing
and is not counted. Every other tensor (the batch, the parameters, what comes from them, factories
given a device) stands for a device tensor.
"""

import traceback
from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary

aten = torch.ops.aten

# aten ops that read a value or size from the device
DATA_DEPENDENT = {
    aten._local_scalar_dense,  # .item(), bool(t), int(t), float(t)
    aten.nonzero,
    aten.masked_select,
    aten._unique,
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.bincount,
    aten.equal,
    aten.is_nonzero,
}
BOOL_INDEXED = {aten.index, aten.index_put, aten.index_put_, aten._index_put_impl_}  # t[mask], t[mask] = v
REPEATS_FROM_TENSOR = {aten.repeat_interleave.Tensor, aten.repeat_interleave.self_Tensor}
TO_HOST = {"tolist", "cpu", "numpy"}  # Tensor methods that copy to the host (no aten op on a CPU tensor)
FACTORIES = {
    "arange",
    "as_tensor",
    "empty",
    "eye",
    "full",
    "linspace",
    "ones",
    "rand",
    "randint",
    "randn",
    "randperm",
    "tensor",
    "zeros",
}
HERE = Path(__file__).resolve()


def tensors_in(tree):
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


class SyncCounter:
    """``with SyncCounter() as sync: ...``; then ``sync.events``: [(what, file:line of the caller)]."""

    def __init__(self):
        self.events = []
        self.host = WeakIdKeyDictionary()  # tensors that a GPU run would hold on the host

    def is_host(self, t: torch.Tensor) -> bool:
        return t in self.host

    def record(self, what: str) -> None:
        frames = [f for f in traceback.extract_stack()[:-1] if "/torch/" not in f.filename and f.filename != str(HERE)]
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        self.events.append((what, where))

    def counts(self) -> Counter:
        return Counter(what for what, _ in self.events)

    def __enter__(self):
        self._modes = [_FunctionWatch(self), _DispatchWatch(self)]
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc):
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        return False


class _FunctionWatch(TorchFunctionMode):
    def __init__(self, counter: SyncCounter):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        inputs = tensors_in((args, kwargs))
        if name in TO_HOST and inputs and not self.counter.is_host(inputs[0]):
            self.counter.record(f"Tensor.{name}")
        out = func(*args, **kwargs)
        # a copy to a device, or a factory given one, makes a device tensor
        to_device = "device" in kwargs or (
            name in ("to", "cuda") and any(isinstance(a, (torch.device, str)) for a in args)
        )
        made_on_host = name in FACTORIES and not inputs and not to_device
        if made_on_host or (inputs and not to_device and all(self.counter.is_host(t) for t in inputs)):
            for t in tensors_in(out):
                self.counter.host[t] = True
        return out


class _DispatchWatch(TorchDispatchMode):
    def __init__(self, counter: SyncCounter):
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        inputs = tensors_in((args, kwargs))
        on_device = any(not self.counter.is_host(t) for t in inputs)
        if on_device and packet in DATA_DEPENDENT:
            self.counter.record(packet.__name__)
        elif on_device and packet in BOOL_INDEXED:
            indices = args[1] if len(args) > 1 else kwargs.get("indices", [])
            if any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices):
                self.counter.record(f"{packet.__name__} with a boolean mask")
        elif on_device and func in REPEATS_FROM_TENSOR and kwargs.get("output_size") is None:
            self.counter.record("repeat_interleave without output_size")
        out = func(*args, **kwargs)
        if inputs and not on_device:
            for t in tensors_in(out):
                self.counter.host[t] = True
        return out
