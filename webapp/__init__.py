"""The web service: upload a photo, see the five facial points of every face (see webapp/app.py)."""
