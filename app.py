"""Entry point: ``python app.py`` serves the explorer on http://127.0.0.1:7860.

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override the address (Gradio reads them itself).
"""

import os

if __name__ == "__main__":
    # Offline by default: no usage analytics calls from a machine without network.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from app import build_demo

    build_demo().launch(max_file_size="50mb")  # larger uploads are refused before decoding
