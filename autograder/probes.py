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
