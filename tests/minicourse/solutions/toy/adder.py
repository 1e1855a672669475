"""Reference for the toy notebook."""
# %% [add-impl]
def add(a, b):
    """Return a + b."""
    ### BEGIN SOLUTION
    return a + b
    ### END SOLUTION

# %% [scale-impl]
import numpy as np


def scale(x, k):
    """Return the array x multiplied by k."""
    ### BEGIN SOLUTION
    return np.asarray(x, dtype=np.float64) * k
    ### END SOLUTION
