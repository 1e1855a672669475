"""CUDA's device rules on a machine without a GPU, for probes.

A function that creates a tensor on the CPU (`torch.zeros(N, H)`, `torch.arange(T)`, a mask, start tokens)
while its input lives on a GPU runs fine on a CPU and crashes on the student's GPU. `FakeGPU` lets a probe
run the student's code as if its inputs were on `cuda:0`: the values are computed on the CPU as usual, but
every tensor the probe puts "on the GPU", and every tensor computed from one, is marked; `.device` reports
`cuda:0` for marked tensors; a factory call given that device (`torch.zeros(3, device=x.device)`) makes a
marked CPU tensor; and, as on CUDA,

- an operation that mixes a marked tensor with an unmarked one of one or more dimensions raises
  `DeviceMismatch` (a CPU tensor of no dimension, a scalar, may meet a GPU tensor, as on CUDA);
- an unmarked tensor indexed with a marked index tensor raises (a marked tensor may be indexed with CPU
  indices, as on CUDA), and so does a GPU factory call given a CPU random generator;
- `.numpy()` of a marked tensor raises; `.cpu()`, `.to("cpu")` give an unmarked copy, `.to(device)`,
  `.cuda()` a marked one; `nn.Module.to(device)` and `nn.Module.to(x)` of a marked `x` mark the module's
  parameters and buffers.

It runs in the worker, next to the student's code, so it imports nothing but torch:

    from course.devices import FakeGPU
    with FakeGPU() as gpu:
        y = gpu.put(torch.randint(0, 5, (7,)))
        out = nb.one_hot(y, 5)                      # raises DeviceMismatch where one_hot mixes devices
        return {"device": str(out.device), "out": out.cpu()}

PyTorch's `meta` device is the other way to see device bugs without a GPU, for shapes only: it computes no
values, so it cannot check a result; this mode computes every value and enforces the rules above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

GPU = torch.device("cuda", 0)
CPU = torch.device("cpu")
_MARK = "_course_on_gpu"
_INDEXING = {"__getitem__", "__setitem__", "index_put_", "index_put", "copy_"}
_ANY_DEVICES = {"_has_compatible_shallow_copy_type", "is_same_size", "numel", "dim", "size"}  # look, compute nothing


class DeviceMismatch(RuntimeError):
    """Tensors on two devices met where CUDA would refuse them."""


def on_gpu(x: Any) -> bool:
    """Whether `x` is a tensor marked as living on the GPU."""
    return isinstance(x, torch.Tensor) and bool(getattr(x, _MARK, False))


def _mark(x: Any, value: bool = True) -> Any:
    """Mark every tensor in `x` (nested tuples, lists and dicts included); returns `x`."""
    for t in tensors(x):
        try:
            setattr(t, _MARK, value)
        except (AttributeError, RuntimeError):  # a tensor subclass that refuses attributes
            pass
    return x


def tensors(x: Any) -> Iterator[torch.Tensor]:
    """Every tensor in `x`: a tensor, or nested lists, tuples and dicts of them."""
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from tensors(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from tensors(v)


def _is_gpu(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.split(":")[0] == "cuda"
    return isinstance(device, int) and not isinstance(device, bool)  # a bare index means a CUDA device


def _shape(t: torch.Tensor) -> str:
    return f"[{', '.join(str(s) for s in t.shape)}]"


def _mismatch(what: str, cpu: torch.Tensor, fn: str) -> DeviceMismatch:
    return DeviceMismatch(
        "Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu! "
        f"A tensor of shape {_shape(cpu)} on the CPU met {what} on cuda:0 in {fn}: a tensor made inside the "
        "function (torch.zeros, torch.arange, torch.ones, a mask) is created on the CPU unless it is given "
        "device=: pass device=x.device, where x is the input (or use torch.zeros_like(x) and the like)"
    )


def _name(func: Callable[..., Any]) -> str:
    name = getattr(func, "__name__", repr(func))
    return f"`{name}`"


class FakeGPU(TorchFunctionMode):
    """Within `with FakeGPU() as gpu:`, tensors given to `gpu.put` behave as if they lived on cuda:0."""

    def __enter__(self) -> FakeGPU:
        # nn.Module.to(tensor) reads the tensor's device in C (torch._C._nn._parse_to), out of this mode's
        # reach: while the mode is on, a marked tensor given there stands for cuda:0
        self._parse_to = torch._C._nn._parse_to
        parse = self._parse_to

        def parse_to(*args: Any, **kwargs: Any) -> Any:
            device, dtype, non_blocking, memory_format = parse(*args, **kwargs)
            given = kwargs.get("tensor", args[0] if args else None)
            return (GPU if on_gpu(given) else device), dtype, non_blocking, memory_format

        torch._C._nn._parse_to = parse_to
        super().__enter__()  # type: ignore[no-untyped-call]
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)  # type: ignore[no-untyped-call]
        torch._C._nn._parse_to = self._parse_to

    def put(self, x: Any) -> Any:
        """A copy of `x` on the GPU: a tensor (a copy, marked), an nn.Module (its parameters and buffers
        marked, in place), or nested lists, tuples and dicts of tensors."""
        if isinstance(x, torch.nn.Module):
            for t in [*x.parameters(), *x.buffers()]:
                _mark(t)
            return x
        if isinstance(x, torch.Tensor):
            return _mark(x.detach().clone().requires_grad_(x.requires_grad))
        if isinstance(x, (list, tuple)):
            return type(x)(self.put(v) for v in x)
        if isinstance(x, dict):
            return {k: self.put(v) for k, v in x.items()}
        return x

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        owner = getattr(func, "__self__", None)
        if name in ("__get__", "__set__") and owner is not None and hasattr(owner, "__name__"):
            return self._attribute(func, str(owner.__name__), name, args)
        if name in ("to", "cuda", "cpu") and args and isinstance(args[0], torch.Tensor):
            return self._move(func, name, args, kwargs)
        if name == "numpy" and args and on_gpu(args[0]):
            raise TypeError(
                "can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the tensor to host "
                "memory first."
            )
        if "device" in kwargs and kwargs["device"] is not None:
            if not _is_gpu(kwargs["device"]):
                return func(*args, **kwargs)  # an explicit CPU tensor, even of a GPU one (zeros_like(x, device="cpu"))
            generator = kwargs.get("generator")
            if isinstance(generator, torch.Generator) and generator.device.type != "cuda":
                raise DeviceMismatch(
                    f"Expected a 'cuda' device type for generator but found '{generator.device.type}' "
                    f"(in {_name(func)}: a CPU generator draws CPU tensors)"
                )
            kwargs["device"] = CPU
            return _mark(func(*args, **kwargs))
        given = list(tensors(list(args))) + list(tensors(list(kwargs.values())))
        gpu = [t for t in given if on_gpu(t)]
        if not gpu or name in _ANY_DEVICES:
            return func(*args, **kwargs)
        if name in _INDEXING:
            target = args[0] if args else None
            if isinstance(target, torch.Tensor) and not on_gpu(target) and target.dim() > 0:
                raise DeviceMismatch(
                    "indices should be either on cpu or on the same device as the indexed tensor (cpu). "
                    + str(_mismatch("an index", target, _name(func))).split("! ", 1)[1]
                )
        else:
            for t in given:
                if not on_gpu(t) and t.dim() > 0:
                    raise _mismatch(f"a tensor of shape {_shape(gpu[0])}", t, _name(func))
        result = func(*args, **kwargs)
        if name in _INDEXING and name != "__getitem__":
            return result  # in place: the target keeps its own device
        return _mark(result)

    def _attribute(self, func: Callable[..., Any], attr: str, how: str, args: tuple[Any, ...]) -> Any:
        obj = args[0] if args else None
        if how == "__set__":
            result = func(*args)
            if attr == "data" and isinstance(obj, torch.Tensor) and len(args) > 1:
                _mark(obj, on_gpu(args[1]))  # Module.to() moves a parameter by setting its .data
            return result
        if on_gpu(obj):
            if attr == "device":
                return GPU
            if attr == "is_cuda":
                return True
            return _mark(func(*args))  # .grad, .data, .T, .mT: on the GPU with their tensor
        return func(*args)

    def _move(self, func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        x = args[0]
        rest = list(args[1:])
        target: Any = None
        if name == "cuda":
            target, rest, kwargs = GPU, [], {k: v for k, v in kwargs.items() if k == "non_blocking"}
        elif name == "cpu":
            target = CPU
        else:
            if kwargs.get("device") is not None:
                target, kwargs["device"] = kwargs["device"], CPU
            elif rest and isinstance(rest[0], (str, torch.device, int)) and not isinstance(rest[0], bool):
                target, rest[0] = rest[0], CPU
            elif rest and isinstance(rest[0], torch.Tensor):
                target = GPU if on_gpu(rest[0]) else CPU
                rest[0] = rest[0].dtype
        if target is None:  # a change of dtype only: the tensor stays where it is
            return _mark(func(*args, **kwargs), on_gpu(x))
        if name == "cuda":
            moved = x
        elif name == "cpu":
            moved = func(x)
        else:
            moved = func(x, *rest, **kwargs)
        if _is_gpu(target):
            return _mark(moved.clone() if moved is x and not on_gpu(x) else moved)
        if on_gpu(x):
            return _mark(x.clone() if moved is x else moved, False)
        return moved
