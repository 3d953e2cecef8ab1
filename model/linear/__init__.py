"""Linear layers on oneDNN on the CPU (``cpu.py``); their plain twin is ``torch.nn.functional.linear``.

The networks' ``nn.Linear`` layers are ``cpu.Linear`` (same parameters, same state_dict keys), and
MambaIR's scan projection calls ``cpu.linear``: oneDNN on a CPU where ``cpu.supported`` says so
(restores, and LAM's input gradient), torch's own matmul everywhere else (training, GPUs, exports).
"""

from .cpu import Linear, linear, supported

__all__ = ["Linear", "linear", "supported"]
