"""What tests of resumed TensorBoard logs share."""

import time


def start_a_new_second() -> None:
    """Sleep until the wall clock's whole second changes.

    A resumed run purges the steps after its checkpoint by writing a purge marker into a new event file, and
    TensorBoard reads a log folder's files in name order: ``events.out.tfevents.<whole seconds>.<host>.<pid>.<n>``.
    A real resume starts later in another process, so its file sorts last. A test resumes in the same process, often
    within the same second, where ``n`` decides, as text: file ``.10`` sorts before ``.9`` and the purge would be
    read before the steps it purges. Starting the resumed run in a later second orders the files as a real resume.
    """
    now = time.time()
    time.sleep(int(now) + 1 - now + 0.01)
