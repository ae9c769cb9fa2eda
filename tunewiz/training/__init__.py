"""LoRA training: the engine process (engine.py), its data (data.py), checkpoints
(checkpoints.py) and starting/stopping it outside the caller's session (launch.py).

Importing this package imports no torch; engine.main() does, inside.
"""
