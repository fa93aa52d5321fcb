"""pytest set-up shared by the unit tests and the notebooks run through nbval."""
import os

# Silence TensorFlow's C++ logging before anything imports it (the notebooks set it themselves).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Build matplotlib's font cache once, here, so that no notebook kernel prints
# "Matplotlib is building the font cache" to stderr on a fresh machine (nbval
# would count that as an output the committed notebook does not have).
import matplotlib.font_manager  # noqa: E402,F401
