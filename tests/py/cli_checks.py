"""Shared by the tests that run the project's command-line tools as a user would."""

import os
import stat
import subprocess
import sys


def run_cli(args, cwd=None, env=None, timeout=120, user=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, user=user)


def assert_one_line_failure(result, exit_code, *phrases):
    """A failure the way a tool should fail: the exit code, one line on stderr that
    says what is wrong, and no traceback anywhere."""
    output = result.stdout + result.stderr
    assert result.returncode == exit_code, (result.returncode, output)
    assert "Traceback" not in output, output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, "expected one line on stderr, got:\n" + result.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def tool_dir(tmp_path, name="bin", **tools):
    """A folder for PATH holding only the given tools: name -> script text (run by
    bash) or an existing program to call. Lets a test take tools away or fake them."""
    folder = tmp_path / name
    folder.mkdir()
    for tool, body in tools.items():
        path = folder / tool
        if os.path.isabs(body) and "\n" not in body:
            body = 'exec %s "$@"\n' % body
        path.write_text("#!/bin/bash\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder
