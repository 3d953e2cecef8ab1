"""Suite-wide settings (set before torch or numba are imported) and the shared launched-app fixture."""

import os

# numba's OpenMP workers spin while idle and slow every later torch op ~10x on
# a 2-core machine; passive waiting removes that (measured in tests/test_vectors).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import socket  # noqa: E402

import pytest  # noqa: E402


def _free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tiny_app_url():
    """The demo with tiny random models (MAMBAIR_APP_DEMO=tiny), launched on a free local port.

    The model cache is emptied before and after, so the module sees only the tiny models.
    """
    from app import build_demo, cache

    old = os.environ.get("MAMBAIR_APP_DEMO")
    os.environ["MAMBAIR_APP_DEMO"] = "tiny"
    cache.clear()
    demo = build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                            quiet=True)
    yield url
    demo.close()
    cache.clear()
    if old is None:
        os.environ.pop("MAMBAIR_APP_DEMO", None)
    else:
        os.environ["MAMBAIR_APP_DEMO"] = old
