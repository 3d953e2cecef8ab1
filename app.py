"""Entry point: ``python app.py`` serves the explorer on http://127.0.0.1:7860.

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT override the address (Gradio reads them itself).
"""

from app import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.launch()
