"""Roles: CLIENT by default, ADMIN only by an operator; nothing from Clerk changes them."""

from shop.models import Role
from tests.support import clerk_user, event


def test_admin_is_302_to_sign_in_when_signed_out(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/admin/"


def test_client_gets_403_then_200_after_set_role(client, runner, sign_in):
    sign_in("user_staff", email="Staff@Example.com")
    assert client.get("/admin/").status_code == 403
    result = runner.invoke(args=["users", "set-role", "staff@example.com", "ADMIN"])
    assert result.exit_code == 0, result.output
    assert "is ADMIN" in result.output
    assert client.get("/admin/").status_code == 200
    assert runner.invoke(args=["users", "set-role", "user_staff", "client"]).exit_code == 0
    assert client.get("/admin/").status_code == 403


def test_set_role_for_unknown_user(runner):
    result = runner.invoke(args=["users", "set-role", "nobody@example.com", "ADMIN"])
    assert result.exit_code == 1
    assert "No live user" in result.output


def test_set_role_refuses_other_roles(runner, make_user):
    make_user("user_a")
    assert runner.invoke(args=["users", "set-role", "user_a", "OWNER"]).exit_code == 2


def test_users_list(runner, make_user):
    make_user("user_a", email="a@example.com")
    make_user("user_b", email="b@example.com", role=Role.ADMIN)
    output = runner.invoke(args=["users", "list"]).output
    assert "user_a" in output and "a@example.com" in output and "CLIENT" in output
    assert "2 user(s)" in output
    admins = runner.invoke(args=["users", "list", "--role", "ADMIN"]).output
    assert "user_b" in admins and "user_a" not in admins


def test_webhook_claiming_admin_changes_nothing(client, sign_in, deliver):
    sign_in("user_a")
    payload = event("user.updated", clerk_user("user_a", updated_at=2, public_metadata={"role": "ADMIN"}))
    assert deliver(payload).json == {"status": "processed"}
    assert client.get("/admin/").status_code == 403
    assert client.get("/api/me").json["role"] == "CLIENT"


def test_shell_makes_an_admin(app, client, sign_in):
    sign_in("user_a")
    with app.app_context():
        context = app.make_shell_context()
        db, user_model, role = context["db"], context["User"], context["Role"]
        user = db.session.scalar(db.select(user_model).where(user_model.clerk_id == "user_a"))
        user.role = role.ADMIN
        db.session.commit()
    assert client.get("/admin/").status_code == 200
