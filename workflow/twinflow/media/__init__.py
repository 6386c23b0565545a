"""Video, audio and image I/O shared by every stage (PyAV for containers, soundfile for wav)."""
