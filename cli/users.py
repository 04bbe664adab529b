"""`spanlake users`: dashboard users and their roles (see docs/security.md, "Dashboard sign-in")."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from spanlake.cli.options import data_dir_option
from spanlake.storage.signin import SIGNIN_ENV, SignIn, signin_path
from spanlake.storage.users import ALL_PROJECTS, ROLES, USERS_ENV, UserStore, needs_rehash, users_path

_data_dir = data_dir_option(
    f"Data directory whose users.json holds the users (${USERS_ENV} names another file; ${SIGNIN_ENV} the lockouts)."
)
_password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of standard input."
)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")


def _store(data_dir: Path) -> UserStore:
    return UserStore(users_path(data_dir))


@click.group("users")
def users() -> None:
    """Dashboard users: viewer (read), labeller (read, label, datasets), admin (everything).

    Passwords are stored as scrypt hashes only. A running dashboard picks up changes by
    itself: a removed user, or one whose password or role changed, is signed out.
    """


@users.command("add")
@_data_dir
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option(
    "--project",
    "projects",
    multiple=True,
    help="A project the user may see (repeat for more). Admins see every project when none is given.",
)
@click.option("--all-projects", is_flag=True, help="The user sees every project, present and future.")
@_password_stdin
@click.option("--no-password", is_flag=True, help="No password: the user can only sign in through a reverse proxy.")
def add(
    data_dir: Path,
    name: str,
    role: str,
    projects: tuple[str, ...],
    all_projects: bool,
    password_stdin: bool,
    no_password: bool,
) -> None:
    """Add a user; the password is prompted for twice (or read with --password-stdin)."""
    if all_projects and projects:
        raise click.UsageError("give --project or --all-projects, not both")
    if not projects:
        if not all_projects and role != "admin":
            raise click.UsageError("give the user's projects with --project P (repeatable), or --all-projects")
        projects = (ALL_PROJECTS,)
    if password_stdin and no_password:
        raise click.UsageError("give --password-stdin or --no-password, not both")
    store = _store(data_dir)
    try:
        if store.get(name) is not None:
            raise click.ClickException(f"user {name!r} exists (remove it first, or change its password with passwd)")
        password = None if no_password else _password(password_stdin)
        user = store.add(name, role, password, projects)  # type: ignore[arg-type]
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    seen = "every project" if user.all_projects else ", ".join(user.projects)
    click.echo(f"added {user.role} {user.name!r} ({seen}) to {store.path}")


@users.command("list")
@_data_dir
def list_users(data_dir: Path) -> None:
    """List users (name, role, projects, password set, last change); never passwords."""
    store = _store(data_dir)
    try:
        found = store.load()
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if not found:
        click.echo(f"no users in {store.path} (create the first with `spanlake users add admin --role admin`)")
        return
    click.echo(f"{'NAME':<20} {'ROLE':<9} {'PASSWORD':<9} {'CHANGED':<21} PROJECTS")
    for u in found:
        pw = ("rehash" if needs_rehash(u.password_hash) else "yes") if u.has_password else "no"
        seen = "(all)" if u.all_projects else ", ".join(u.projects)
        click.echo(f"{u.name:<20} {u.role:<9} {pw:<9} {_when(u.changed_at):<21} {seen}")


@users.command("remove")
@_data_dir
@click.argument("name")
def remove(data_dir: Path, name: str) -> None:
    """Remove a user; their dashboard sessions end on their next click."""
    try:
        user = _store(data_dir).remove(name)
    except KeyError:
        raise click.ClickException(f"no user {name!r} (see `spanlake users list`)") from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"removed {user.role} {user.name!r}")


@users.command("passwd")
@_data_dir
@click.argument("name")
@_password_stdin
@click.option("--no-password", is_flag=True, help="Remove the password (reverse-proxy sign-in only).")
def passwd(data_dir: Path, name: str, password_stdin: bool, no_password: bool) -> None:
    """Set a user's password (hashed with today's settings); their open sessions end."""
    store = _store(data_dir)
    try:
        if store.get(name) is None:
            raise click.ClickException(f"no user {name!r} (see `spanlake users list`)")
        store.set_password(name, None if no_password else _password(password_stdin))
    except KeyError:
        raise click.ClickException(f"no user {name!r} (see `spanlake users list`)") from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"{'removed the password of' if no_password else 'changed the password of'} {name!r}")


@users.command("unlock")
@_data_dir
@click.argument("name")
@click.option("--client", "client", help="Also clear the lock of this client address (all names tried from it).")
def unlock(data_dir: Path, name: str, client: str | None) -> None:
    """Clear a user's failed sign-ins and lockouts, from every address (they live in the data
    directory's signin.json, or $SPANLAKE_SIGNIN_FILE; a running dashboard sees the change at once)."""
    signin = SignIn(users_path(data_dir), lockouts=signin_path(data_dir))
    try:
        n = signin.unlock(name, client)
    except (OSError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    what = f"{name!r}" + (f" and address {client}" if client else "")
    click.echo(f"unlocked {what}: cleared {n} failure count(s) in {signin.lockouts.path}")
