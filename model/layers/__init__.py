"""Faster CPU forms of the networks' small layers, each beside its plain twin in torch.

- ``onednn.py``: ``Linear`` / ``linear`` on oneDNN on x86 CPUs (twin ``torch.nn.functional.linear``).

The networks use ``Linear`` in place of ``nn.Linear`` (same parameters, same state_dict keys), and
MambaIR's scan projection calls ``linear``: the fast form on a CPU where ``onednn.supported`` says
so and no parameter takes a gradient (restores, and LAM's input gradient), torch's own everywhere
else (training, GPUs, exports).
"""

from .onednn import Linear, linear, supported

__all__ = ["Linear", "linear", "supported"]
