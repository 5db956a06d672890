"""Hugging Face libraries stay local unless a hub name asks otherwise.

transformers and huggingface_hub read these variables when they are imported, so this module
runs before either is. models/hub.py downloads on purpose and honours only the user's own
setting: ours is written "ON" so the two can be told apart.
"""

from __future__ import annotations

import os
import warnings

OFFLINE_DEFAULT = "ON"
#: what the user had set before workbench was imported (None: nothing)
USER_OFFLINE = {var: os.environ.get(var) for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
os.environ.setdefault("HF_HUB_OFFLINE", OFFLINE_DEFAULT)
os.environ.setdefault("TRANSFORMERS_OFFLINE", OFFLINE_DEFAULT)
# Loading a local model needs no progress bar of its own (in a kernel with ipywidgets,
# transformers would leave a stray widget under the cell); the engine reports its own progress.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# huggingface_hub imports tqdm.auto, which warns in kernels without ipywidgets; the warning
# is about progress bars we switch off anyway.
warnings.filterwarnings("ignore", message="IProgress not found")
