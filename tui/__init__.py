"""The Textual wizard (installed as tunewiz.tui): one screen per step over the headless core."""
