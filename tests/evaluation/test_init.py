"""Importing the evaluation package or its metrics stays light: librosa loads when a metric first needs it."""

import subprocess
import sys


def test_import_is_light():
    code = (
        "import sys\n"
        "import stable_audio_kit.evaluation as evaluation\n"
        "assert not [m for m in sys.modules if m.startswith('stable_audio_kit.evaluation.')], sys.modules\n"
        "from stable_audio_kit.evaluation import metrics, probes\n"
        "assert 'librosa' not in sys.modules\n"
        "assert callable(evaluation.evaluate)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
