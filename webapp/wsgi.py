"""gunicorn entry point (webapp/run.sh): each worker process imports this and loads the model once."""
import cv2

from webapp.app import create_app

# Parallelism comes from the worker processes; one OpenCV thread each avoids oversubscribing.
cv2.setNumThreads(1)
app = create_app()
