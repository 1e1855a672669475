"""Week 1, notebook 04: networks as universal function approximators — the reference implementation.

Each `# %% [cell-id]` region below is the source of the notebook's solution cell of that id. Text before the
first region (this docstring and the imports) is not copied: the notebook's import cell defines the same names.
"""
import torch
import torch.nn as nn


# %% [hinge_net_cell]
def hinge_net(knots, values):
    """The one-hidden-layer ReLU network whose graph joins the points (knots[i], values[i]) by straight lines.

    knots: [K] increasing, values: [K], K >= 2, float tensors of one dtype on one device
    ->  nn.Sequential(nn.Linear(1, K - 1), nn.ReLU(), nn.Linear(K - 1, 1)) of that dtype and device, mapping
        x [N, 1] to f(x) [N, 1], where f(x) = values[0] for x <= knots[0], f is linear between consecutive knots
        with f(knots[i]) = values[i], and beyond knots[-1] f continues with the last segment's slope.
    """
    K = len(knots)
    net = nn.Sequential(nn.Linear(1, K - 1), nn.ReLU(), nn.Linear(K - 1, 1)).to(knots)
    ### BEGIN SOLUTION
    slopes = (values[1:] - values[:-1]) / (knots[1:] - knots[:-1])       # [K - 1], one per segment
    turns = slopes - torch.cat([slopes.new_zeros(1), slopes[:-1]])      # [K - 1], the change of slope at each hinge
    with torch.no_grad():
        net[0].weight.fill_(1.0)                 # unit i is relu(x - knots[i]): 0 left of knot i, slope 1 right of it
        net[0].bias.copy_(-knots[:-1])
        net[2].weight.copy_(turns.unsqueeze(0))  # [1, K - 1]
        net[2].bias.copy_(values[:1])            # every unit is off left of knots[0]: f = values[0] there
    ### END SOLUTION
    return net


# %% [hinges_cell]
def hinge_locations(net):
    """Where each hidden unit of net = nn.Sequential(nn.Linear(1, H), nn.ReLU(), nn.Linear(H, 1)) switches between
    off and on: the x at which its pre-activation w x + b is 0.

    ->  a tensor [H], detached from the graph, holding -b / w for each unit, and nan for a unit whose weight w is
        exactly 0 (it is constant: it has no hinge)
    """
    ### BEGIN SOLUTION
    w = net[0].weight.detach()[:, 0]        # [H]: the weight is [H, 1]
    b = net[0].bias.detach()                # [H]
    return torch.where(w != 0, -b / w, torch.full_like(w, float("nan")))
    ### END SOLUTION
