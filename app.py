"""Entry point: ``python app.py`` serves the explorer on http://127.0.0.1:7860.

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override the address (Gradio reads them itself).
MAMBAIR_WEIGHTS=official fetches the official light SR checkpoints before serving (the default on a
Hugging Face Space, where SPACE_ID is set); MAMBAIR_WEIGHTS_DIR moves the weights folder.
"""

import logging
import os

if __name__ == "__main__":
    # Offline by default: no usage analytics calls from a machine without network.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from app import build_demo, cache

    cache.prepare_weights(logging.getLogger("weights").info)  # never raises: offline it says so
    import threading

    from app.handlers import warm_up

    demo = build_demo()
    # Load the first task's models and time them in the background, so that the first preview has
    # its estimate ready (app.timing); a restore started meanwhile waits for it (timing.RUN_LOCK).
    threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    demo.launch(max_file_size="50mb")  # larger uploads are refused before decoding
