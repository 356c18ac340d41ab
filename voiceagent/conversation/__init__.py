"""Live calls: turn-taking (``endpointer``), one call's session (``session``), and a scripted caller (``caller``)."""
