"""The `distributor` command as a user runs it: once whole in real subprocesses, then what it
says and refuses through its main() in this process (tests/processes.py: ``invoke_cli``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distributor.core.config import Settings
from tests.helpers import release_text
from tests.processes import NO_BROKER, invoke_cli, run_cli, settings_env


@pytest.fixture
def run(sqlite_settings: Settings, redis_url: str):  # type: ignore[no-untyped-def]
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(sqlite_settings, *args, DISTRIBUTOR_BROKER_URL=redis_url)

    return run


@pytest.fixture
def invoke(sqlite_settings: Settings, redis_url: str):  # type: ignore[no-untyped-def]
    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(sqlite_settings, *args, DISTRIBUTOR_BROKER_URL=redis_url)

    return invoke


def test_a_release_from_file_to_published(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("db", "upgrade").returncode == 0
    added = run("topics", "add", "climate", "--name", "Climate", "--name", "fr:Climat")
    assert added.returncode == 0, added.stderr
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,language,topics\nann@example.com,Ann,en,climate\n")
    imported = run("subscribers", "import", str(csv), "--confirmed", "--consent-source", "fair")
    assert imported.returncode == 0 and "1 added" in imported.stdout
    md = tmp_path / "release.md"
    md.write_text(release_text())
    created = run("releases", "create", str(md))
    assert created.returncode == 0, created.stderr
    release_id = created.stdout.strip()
    assert release_id.isdigit()
    published = run("releases", "publish", release_id)
    assert published.returncode == 0 and "published" in published.stdout
    # How many it goes to; no earlier send to time it by.
    assert "sending: 1 recipient; no earlier send of 1,000 or more" in published.stdout
    status = run("releases", "status", release_id)
    assert status.returncode == 0 and "Agency signs agreement" in status.stdout
    exported = run("subscribers", "export")
    assert "ann@example.com,Ann,en,climate,confirmed,fair" in exported.stdout


def test_bad_input_exits_1_naming_file_line_and_field(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run = invoke
    run("topics", "add", "climate", "--name", "Climate")
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,language,topics\nann@example.com,Ann,en,climate\nbad,B,en,climate\n")
    result = run("subscribers", "import", str(csv))
    assert result.returncode == 1
    assert f"{csv}:3:" in result.stderr and "nothing imported" in result.stderr
    assert run("subscribers", "export").stdout.count("\n") == 1  # the header only

    md = tmp_path / "broken.md"
    md.write_text(release_text().replace("+01:00", ""))
    result = run("releases", "create", str(md))
    assert result.returncode == 1
    assert f"{md}: field 'date'" in result.stderr

    missing = run("releases", "status", "999")
    assert missing.returncode == 1 and "no release with id 999" in missing.stderr
    bad_time = run("releases", "publish", "1", "--at", "tomorrow")
    assert bad_time.returncode == 1 and "--at 'tomorrow'" in bad_time.stderr
    assert run("releases", "publish", "not-a-number").returncode == 2  # usage error


LONG_TITLE = (
    "Agency signs a cooperation agreement with eight European partners on the long-term "
    "monitoring of sea level, ocean heat and coastal erosion"
)


def test_create_and_publish_print_the_id_and_the_address_and_say_when_a_slug_is_cut(  # type: ignore[no-untyped-def]
    invoke, tmp_path: Path
) -> None:
    run = invoke
    # Issue 11: slugs were cut at 80 characters inside a word, and only the id was printed.
    assert run("db", "upgrade").returncode == 0
    assert run("topics", "add", "climate", "--name", "Climate").returncode == 0
    short = tmp_path / "short.md"
    short.write_text(release_text().replace("slug: agency-signs-agreement\n", ""))
    created = run("releases", "create", str(short))
    assert created.returncode == 0, created.stderr
    release_id = created.stdout.strip()  # stdout is the id alone: ID=$(… releases create …)
    assert release_id.isdigit()
    assert (
        created.stderr.strip() == f"release {release_id} created: /releases/agency-signs-agreement"
    )

    long = tmp_path / "long.md"
    long.write_text(release_text(title=LONG_TITLE).replace("slug: agency-signs-agreement\n", ""))
    published = run("publish", str(long))
    assert published.returncode == 0, published.stderr
    first = published.stdout.splitlines()[0]
    number, path = first.removeprefix("release ").split(" created: ")
    assert number.isdigit() and int(number) == int(release_id) + 1
    slug = path.removeprefix("/releases/")
    whole = LONG_TITLE.lower().replace(",", "").replace(" ", "-")
    assert len(slug) <= 80 and whole.startswith(slug) and whole[len(slug)] == "-"  # a whole word
    assert slug == "agency-signs-a-cooperation-agreement-with-eight-european-partners-on-the-long"
    assert f"the title makes a slug of {len(whole)} characters" in published.stderr
    assert f"cut between two words to {len(slug)} ({slug})" in published.stderr
    assert "warning" not in created.stderr


# What no command's tree nor help loads: each command imports what it needs (issue 16).
# Not pydantic: Typer (0.29) loads it itself to convert a group's or a command's arguments.
ONLY_SOME_COMMANDS_NEED = [
    *("sqlalchemy", "pydantic_settings", "email_validator", "redis"),  # the Settings, the DB
    *("celery", "kombu", "fastapi", "starlette", "uvicorn", "jinja2"),  # the workers, the web
    *("yaml", "PIL", "babel", "dkim", "dns", "flufl.bounce", "feedgen", "nh3", "rich.progress"),
]
# The only modules of the package itself that they load, besides the command's own (cli/):
# the error tree, what the options' help names (scopes, release states), and the switch of
# the garbage collector during a command's start (``collector``: ``gc`` alone). The packages
# load nothing (``actions`` imports an action where it is first used).
LIGHT = ["distributor", "distributor.core", "distributor.actions", "distributor.core.collector"]
LIGHT += ["distributor.core.errors", "distributor.core.roles", "distributor.core.states"]

PROBE = """
import sys

def loaded(stage):
    heavy = [m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in {heavy!r})]
    ours = [m for m in sys.modules if m.split(".")[0] == "distributor"]
    ours = [m for m in ours if not m.startswith("distributor.cli") and m not in {light!r}]
    print(stage + ":", *sorted(heavy + ours), file=sys.stderr)

import distributor.cli
loaded("import")
for args in (["--help"], ["releases", "--help"], ["releases", "status", "--help"]):
    sys.argv = ["distributor", *args]
    try:
        distributor.cli.main()
    except SystemExit:
        pass
    loaded(" ".join(args))
"""


def test_the_command_and_its_help_load_nothing_only_some_commands_need() -> None:
    """Every invocation, and the suite's hundreds, pays for what ``distributor`` imports
    before it runs: building the command tree and printing any help load neither the
    Settings, the database, Redis, Celery, the web stack nor a domain module (``--help``:
    0.87 s at d84dcad, 0.14 s without them, a bare Typer app's time; README, "Performance",
    ``make bench-cli``)."""
    probe = PROBE.format(heavy=ONLY_SOME_COMMANDS_NEED, light=LIGHT)
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    stages = [line for line in loaded.stderr.splitlines() if line.endswith(":") or ": " in line]
    assert stages == ["import:", "--help:", "releases --help:", "releases status --help:"], (
        loaded.stderr
    )
    assert "Delivery counts of a release" in loaded.stdout  # the help was printed


START_PROBE = """
import gc, sys
import distributor.cli
at_start = gc.get_freeze_count()  # CPython 3.12 freezes a few hundred of its own
# The collections that ran before the command froze what it imported, and after.
runs = {"starting": 0, "started": 0}
gc.callbacks.append(lambda phase, info: phase == "start" and runs.update(
    {(key := "starting" if gc.get_freeze_count() <= at_start else "started"): runs[key] + 1}))
for args in (["releases", "status", "1"], ["--help"]):
    runs.update(starting=0, started=0)
    sys.argv = ["distributor", *args]
    try:
        distributor.cli.main()
    except SystemExit:
        pass
    print(" ".join(args), "collections starting:", runs["starting"],
          "started:", "some" if runs["started"] else "none",
          "after:", gc.isenabled(), gc.get_freeze_count(), file=sys.stderr)
"""


def test_a_command_imports_without_garbage_collection_and_gives_the_collector_back(
    sqlite_settings: Settings,
) -> None:
    """A command's imports (SQLAlchemy, the models, Redis…) make a few hundred thousand
    objects that live until it exits: no cyclic collection scans them while it starts
    (~0.1 s of `releases status`' 0.8 s: core/collector.py); once it has its Settings the
    collector runs again, for what the command does (`serve` runs for weeks). Run in a
    process that goes on after it (as the tests' ``invoke_cli`` runs commands), a command
    leaves the collector on and nothing frozen, whether it loaded its Settings or only
    printed help."""
    from tests.feed_samples import add_feed_topics, add_release

    add_feed_topics(sqlite_settings)
    add_release(sqlite_settings, 1)
    env = settings_env(sqlite_settings, DISTRIBUTOR_BROKER_URL=NO_BROKER)
    done = subprocess.run([sys.executable, "-c", START_PROBE], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "planned 0" in done.stdout, done.stderr
    assert done.stderr.splitlines()[-2:] == [
        # Once it has its Settings, the collector runs again for what the command does.
        "releases status 1 collections starting: 0 started: some after: True 0",
        "--help collections starting: 0 started: none after: True 0",
    ], done.stderr


STATUS_PROBE = """
import sys
import distributor.cli
sys.argv = ["distributor", "releases", "status", "1"]
try:
    distributor.cli.main()
except SystemExit:
    pass
print("loaded:", *sorted(m for m in sys.modules if m.split(".")[0] in {names!r}),
      file=sys.stderr)
"""


def test_a_release_status_on_sqlite_loads_no_unused_heavy_module(sqlite_settings: Settings) -> None:
    """`releases status` (goal: 0.5 s, whole process) loads what reading a release's counts
    needs: not email-validator (only settings with a non-ASCII sender domain use it, a
    twentieth of the command's time), nor the workers' or the web's stack."""
    from tests.feed_samples import add_feed_topics, add_release

    add_feed_topics(sqlite_settings)
    add_release(sqlite_settings, 1)
    env = settings_env(sqlite_settings, DISTRIBUTOR_BROKER_URL=NO_BROKER)
    probe = STATUS_PROBE.format(names=["email_validator", "celery", "fastapi", "jinja2"])
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert "planned 0" in done.stdout, done.stderr
    assert done.stderr.splitlines()[-1] == "loaded:", done.stderr
