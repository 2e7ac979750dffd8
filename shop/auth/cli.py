"""`flask users list` and `flask users set-role`: the operator's way to manage roles."""

from __future__ import annotations

import click
from sqlalchemy import select

from shop.auth import bp
from shop.auth.roles import change_role, find_by_email_or_clerk_id
from shop.extensions import db
from shop.models import Role, User

users_cli = bp.cli
users_cli.short_help = "List users and set their roles."


@users_cli.command("set-role")
@click.argument("identifier", metavar="EMAIL_OR_CLERK_ID")
@click.argument("role", type=click.Choice([r.value for r in Role], case_sensitive=False))
def set_role(identifier: str, role: str) -> None:
    """Make a user ADMIN or CLIENT."""
    user = find_by_email_or_clerk_id(identifier)
    if user is None:
        raise click.ClickException(
            f"No live user {identifier!r} in the mirror. They appear after their first sign-in or webhook; "
            "`flask users list` shows who is there."
        )
    changed = change_role(user, Role(role.upper()), by="flask users set-role")
    db.session.commit()
    click.echo(f"{user.email or user.clerk_id} is {user.role.value}" + ("" if changed else " (unchanged)"))


@users_cli.command("list")
@click.option("--role", type=click.Choice([r.value for r in Role], case_sensitive=False))
@click.option("--deleted", is_flag=True, help="Include deleted users (tombstones).")
def list_users(role: str | None, deleted: bool) -> None:
    """Show users: Clerk id, e-mail, name, role."""
    query = select(User).order_by(User.created_at)
    if not deleted:
        query = query.where(User.deleted_at.is_(None))
    if role:
        query = query.where(User.role == Role(role.upper()))
    users = db.session.scalars(query).all()
    for user in users:
        state = " (deleted)" if user.is_deleted else ""
        name = " ".join(p for p in (user.first_name, user.last_name) if p) or "-"
        click.echo(f"{user.clerk_id:<34} {user.email or '-':<36} {name:<28} {user.role.value}{state}")
    click.echo(f"{len(users)} user(s)")
