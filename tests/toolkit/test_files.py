"""Result folders as one unit: staging and swap, one writer at a time, kills at any moment,
permissions from the umask."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from reddiff import InputError
from reddiff import files
from reddiff.files import OUTPUT_MARKER, atomic_write, check_output_folder, locked_output, staged_output


def _write_generation(folder, generation, names=("a.nc", "b.png", "c.md")):
    for name in names:
        (folder / name).write_text(f"generation {generation}")


def _generations(folder):
    return {p.read_text() for p in folder.iterdir() if p.name != OUTPUT_MARKER}


def test_atomic_write_follows_the_umask(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            path = atomic_write(tmp_path / f"f{umask}", lambda tmp: open(tmp, "w").write("x"))
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode


def test_staged_output_creates_replaces_and_keeps_the_old_result_on_failure(tmp_path):
    target = tmp_path / "out"
    with staged_output(target) as stage:
        _write_generation(stage, 1)
    assert _generations(target) == {"generation 1"} and (target / OUTPUT_MARKER).is_file()
    with pytest.raises(InputError, match="--overwrite"):
        with staged_output(target) as stage:
            pass
    with pytest.raises(RuntimeError, match="half way"):
        with staged_output(target, overwrite=True) as stage:
            (stage / "a.nc").write_text("generation 2")
            raise RuntimeError("half way")
    assert _generations(target) == {"generation 1"} and len(list(target.iterdir())) == 4
    with staged_output(target, overwrite=True) as stage:
        _write_generation(stage, 3, names=("a.nc",))
    assert sorted(p.name for p in target.iterdir()) == [OUTPUT_MARKER, "a.nc"]  # no stale b.png, c.md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_replacing_works_without_an_atomic_exchange(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "_exchange", lambda a, b: False)
    target = tmp_path / "out"
    for generation in (1, 2):
        with staged_output(target, overwrite=True) as stage:
            _write_generation(stage, generation)
    assert _generations(target) == {"generation 2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_folders_reddiff_did_not_write_are_never_replaced(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="did not write"):
        check_output_folder(tmp_path, overwrite=True)
    with pytest.raises(InputError, match="not a folder"):
        check_output_folder(tmp_path / "mine.txt")
    with pytest.raises(InputError, match="other than the current one"):
        check_output_folder("")
    assert check_output_folder(tmp_path / "empty") == tmp_path / "empty"


#: Imports reddiff.files alone (not the package's torch-heavy __init__), so a child starts fast.
LIGHT_IMPORT = textwrap.dedent(f"""
    import sys, types
    package = types.ModuleType("reddiff")
    package.__path__ = [{str(files.Path(files.__file__).parent)!r}]
    sys.modules["reddiff"] = package
""")

HOLD = LIGHT_IMPORT + textwrap.dedent("""
    import sys, time
    from reddiff.files import locked_output
    with locked_output(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(30)
""")


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    target = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match="another reddiff run"):
            with staged_output(target):
                pass
    finally:
        holder.kill()
        holder.wait()
    with staged_output(target) as stage:  # a dead holder's lock is released with its process
        _write_generation(stage, 1)
    assert _generations(target) == {"generation 1"}


WRITER = LIGHT_IMPORT + textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from reddiff.files import staged_output
    target, generation = Path(sys.argv[1]), sys.argv[2]
    print("start", flush=True)
    with staged_output(target, overwrite=True) as stage:
        for name in ("a.nc", "b.png", "c.md"):
            time.sleep(0.05)
            (stage / name).write_text(f"generation {generation}")
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_run_killed_at_any_moment_leaves_one_whole_result(tmp_path, sig):
    target = tmp_path / "out"
    with staged_output(target) as stage:
        _write_generation(stage, 0)
    for step, delay in enumerate([0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.6, 1.0, 1.5, 2.0]):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target), str(step + 1)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        writer.stdout.readline()
        time.sleep(delay)
        writer.send_signal(sig)
        writer.wait()
        seen = _generations(target)
        assert len(seen) == 1 and len(list(target.iterdir())) == 4, (delay, seen)
    with locked_output(target):  # the next writer clears what a killed one left
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
