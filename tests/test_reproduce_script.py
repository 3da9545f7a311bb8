"""`./reproduce.sh`'s command line: help, a bad profile, and a dry run that names the stages."""

import subprocess

from helpers import REPO_ROOT


def reproduce(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO_ROOT / "reproduce.sh"), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_help_explains_the_options():
    result = reproduce("--help")
    assert result.returncode == 0 and "--profile" in result.stdout and "--dry-run" in result.stdout


def test_unknown_profile_and_unknown_argument_exit_2():
    bad_profile = reproduce("--profile", "huge")
    assert bad_profile.returncode == 2 and "unknown profile 'huge'" in bad_profile.stderr
    bad_argument = reproduce("--fast")
    assert bad_argument.returncode == 2 and "unknown argument '--fast'" in bad_argument.stderr


def test_dry_run_names_the_profile_and_its_stages_and_runs_nothing():
    result = reproduce("--profile", "smoke", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Profile: smoke (chosen with --profile)" in result.stdout
    for stage in ("tasks@smoke", "traces@smoke-persistent", "traces@smoke-stateless", "base@smoke"):
        assert stage in result.stdout
