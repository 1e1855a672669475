"""Probes that more than one hidden suite uses. A suite imports them (`from probes import seeded_weights`:
the grader puts this folder on the suite's path), and their source travels to the worker with the suite's
own probes."""

from course.testing import probe


@probe
def seeded_weights(nb, model, seed):
    """Give every entry of model.state_dict(), in sorted name order, seeded values scaled by 1/sqrt(fan-in)."""
    import math
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in sorted(model.state_dict().items()):
            fan_in = t[0].numel() if t.dim() > 1 else 4
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in))
    return {name: list(t.shape) for name, t in sorted(model.state_dict().items())}


@probe
def forbidding(nb, targets, run):
    """run() while every target, (owner, attribute name, label), raises when called; each is put back after.
    ->  (the labels of those called, sorted; the first error run raised, "" if none; what run returned)."""
    called = []

    def forbid(label):
        def raiser(*args, **kwargs):
            called.append(label)
            raise RuntimeError(f"{label} may not be used here")
        return raiser

    saved = [(owner, name, vars(owner).get(name)) for owner, name, _ in targets]
    for owner, name, label in targets:
        setattr(owner, name, forbid(label))
    error, out = "", None
    try:
        out = run()
    except Exception as exc:                       # reported: a forbidden call, or the student's own error
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    finally:
        for owner, name, value in saved:
            if value is None:
                delattr(owner, name)               # inherited (Tensor.softmax): remove the one set here
            else:
                setattr(owner, name, value)
    return sorted(set(called)), error, out


@probe
def device_mixing():
    """A torch function mode that records every torch function called with tensors (of one dimension or more) on
    more than one device: what would fail on a GPU, seen on the CPU and PyTorch's "meta" device."""
    from torch.overrides import TorchFunctionMode

    from course.devices import tensors

    class Mixing(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.mixed = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            devices = sorted({t.device.type for t in tensors((args, kwargs)) if t.dim() > 0})
            if len(devices) > 1:
                self.mixed.append(f"{getattr(func, '__name__', str(func))} on {' and '.join(devices)}")
            return func(*args, **kwargs)

    return Mixing()
