"""Hidden tests for week3/03_recurrence_vs_attention: what recurrence costs next to attention.

The cost model is compared exactly with the reference's, on sizes the notebook does not show: batches and sequences
of one, input sizes different from the hidden size, 1 to 8 heads, MLP widths other than 4d, and sequences long
enough (10^5 steps) that a float would lose digits where a Python int does not.
"""
import pytest

from course.testing import check, probe

LSTM_CASES = [dict(T=5, N=2, I=3, H=4), dict(T=1, N=1, I=1, H=1), dict(T=64, N=8, I=64, H=80),
              dict(T=1000, N=3, I=7, H=2), dict(T=100_000, N=32, I=512, H=1024)]
BLOCK_CASES = [dict(T=5, N=2, d=8, n_head=2, d_ff=32), dict(T=1, N=1, d=4, n_head=1, d_ff=4),
               dict(T=64, N=8, d=64, n_head=4, d_ff=256), dict(T=1000, N=3, d=24, n_head=8, d_ff=40),
               dict(T=100_000, N=32, d=768, n_head=12, d_ff=3072)]


def _cfg(cfg):
    return ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in cfg.items())


# ---------------------------------------------------------------------------------------------------------
# probes (run next to the submission; self-contained)
# ---------------------------------------------------------------------------------------------------------

@probe
def cost_case(nb, kind, cases):
    """nb.lstm_cost or nb.block_cost on each case: the returned dict's keys, and each entry's value and type."""
    fn = nb.lstm_cost if kind == "lstm" else nb.block_cost
    out = []
    for cfg in cases:
        result = fn(**cfg)
        row = {"is_dict": isinstance(result, dict)}
        if isinstance(result, dict):
            row["keys"] = sorted(result)
            for key in ("flops", "sequential"):
                value = result.get(key)
                row[f"{key}_type"] = type(value).__name__
                if hasattr(value, "item"):                 # a tensor or a numpy number: its value, as Python's
                    value = value.item()
                finite = isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
                row[key] = int(value) if finite else None
        out.append(row)
    return out


def _exact(found, expected, what):
    """Integers compared exactly (a float of 10^20 would pass a float comparison with digits missing)."""
    check(found == expected, f"{what} is {found if found is None else format(found, ',')}, expected {expected:,}")


def _costs(student, reference, kind, cases):
    found = student(cost_case, kind=kind, cases=cases)
    expected = reference(cost_case, kind=kind, cases=cases)
    name = "lstm_cost" if kind == "lstm" else "block_cost"
    for cfg, f, e in zip(cases, found, expected):
        check(f["is_dict"], f"{name}({_cfg(cfg)}) should return a dict with the keys 'flops' and 'sequential'")
        check(f["keys"] == e["keys"], f"{name}({_cfg(cfg)}) returned the keys {f['keys']}, expected {e['keys']}")
    return found, expected


# ---------------------------------------------------------------------------------------------------------
# the LSTM
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("cost_model")
def test_lstm_flops(student, reference):
    """The LSTM's products: x @ W_ih.T for every step, [N*T, I] @ [I, 4H], and h_{t-1} @ W_hh.T at each of the T steps, [N, H] @ [H, 4H]; four gates, so 4H columns; each product counted with matmul_flops (2 m k n)."""
    found, expected = _costs(student, reference, "lstm", LSTM_CASES)
    for cfg, f, e in zip(LSTM_CASES, found, expected):
        _exact(f["flops"], e["flops"], f"lstm_cost({_cfg(cfg)})['flops']")


@pytest.mark.exercise("cost_model")
def test_lstm_sequential_steps(student, reference):
    """The LSTM's chain: step t's recurrent product h_{t-1} @ W_hh.T needs h_{t-1}, which needs step t-1's product; the input products x_t @ W_ih.T need no h and run alongside. One product per step, T in all, whatever N, I and H."""
    cases = LSTM_CASES + [dict(T=7, N=100, I=3, H=4), dict(T=7, N=1, I=300, H=40)]
    found, expected = _costs(student, reference, "lstm", cases)
    for cfg, f, e in zip(cases, found, expected):
        _exact(f["sequential"], e["sequential"], f"lstm_cost({_cfg(cfg)})['sequential']")


# ---------------------------------------------------------------------------------------------------------
# the transformer block
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.exercise("cost_model")
def test_block_flops(student, reference):
    """The block's products: q, k, v together ([N*T, d] @ [d, 3d]); per head and sequence the scores q @ k.T ([T, d/n_head] @ [d/n_head, T]) and weights @ v ([T, T] @ [T, d/n_head]); the output projection ([N*T, d] @ [d, d]); the MLP's two layers ([N*T, d] @ [d, d_ff] and [N*T, d_ff] @ [d_ff, d])."""
    found, expected = _costs(student, reference, "block", BLOCK_CASES)
    for cfg, f, e in zip(BLOCK_CASES, found, expected):
        _exact(f["flops"], e["flops"], f"block_cost({_cfg(cfg)})['flops']")


@pytest.mark.exercise("cost_model")
def test_block_flops_grow_quadratically_in_T(student, reference):
    """The scores and the weighted sum are T x T products for every head of every sequence: the block's FLOPs are a linear term in T (the projections and the MLP) plus a term in T^2 (attention), which dominates for long sequences."""
    cases = [dict(T=T, N=4, d=32, n_head=4, d_ff=128) for T in (2, 16, 128, 1024, 8192)]
    found, expected = _costs(student, reference, "block", cases)
    for cfg, f, e in zip(cases, found, expected):
        _exact(f["flops"], e["flops"], f"block_cost({_cfg(cfg)})['flops']")


@pytest.mark.exercise("cost_model")
def test_block_flops_do_not_depend_on_the_heads(student, reference):
    """Splitting d into n_head heads of d / n_head each leaves the attention's FLOPs unchanged: n_head products of width d / n_head cost what one of width d would; each head's products use d / n_head, not d."""
    cases = [dict(T=50, N=3, d=48, n_head=h, d_ff=96) for h in (1, 2, 3, 4, 8, 16)]
    found, expected = _costs(student, reference, "block", cases)
    for cfg, f, e in zip(cases, found, expected):
        _exact(f["flops"], e["flops"], f"block_cost({_cfg(cfg)})['flops']")


@pytest.mark.exercise("cost_model")
def test_block_sequential_steps(student, reference):
    """The block's chain is the same for every length: q, k, v; the scores; weights @ v; the output projection; the MLP's first layer, then its second. Every position is computed at once, the causal mask included, so the chain does not grow with T."""
    cases = BLOCK_CASES + [dict(T=2, N=1, d=8, n_head=2, d_ff=8), dict(T=4096, N=2, d=8, n_head=4, d_ff=8)]
    found, expected = _costs(student, reference, "block", cases)
    for cfg, f, e in zip(cases, found, expected):
        _exact(f["sequential"], e["sequential"], f"block_cost({_cfg(cfg)})['sequential']")


@pytest.mark.exercise("cost_model")
def test_costs_are_python_ints(student, reference):
    """Both functions return their counts as Python ints (not floats, which lose digits beyond 2^53, nor tensors): multiply integers, and divide d by n_head with //."""
    for kind, cases in (("lstm", LSTM_CASES), ("block", BLOCK_CASES)):
        found, expected = _costs(student, reference, kind, cases)
        name = "lstm_cost" if kind == "lstm" else "block_cost"
        for cfg, f, e in zip(cases, found, expected):
            for key in ("flops", "sequential"):
                check(f[f"{key}_type"] == "int", f"{name}({_cfg(cfg)})['{key}'] is a {f[f'{key}_type']}, "
                                                 "expected a Python int")
                _exact(f[key], e[key], f"{name}({_cfg(cfg)})['{key}']")
