"""What the notebooks show: figures, widgets, the sliders' prepared students and a student
retrained live. Imports :mod:`kdteach.core` and :mod:`kdteach.protocol`."""
