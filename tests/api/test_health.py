from sqlalchemy import select

from shop.extensions import db
from tests.support import clerk_user, deleted_event, event


def test_health_is_ok(client):
    response = client.get("/api/health")
    assert (response.status_code, response.json) == (200, {"status": "ok", "database": "ok"})


def test_test_db_counts_live_users_only(client, deliver):
    for index in range(3):
        deliver(event("user.created", clerk_user(f"user_{index}")))
    deliver(deleted_event("user_2"))
    response = client.get("/api/test-db")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "success"
    assert body["data"]["connected"] is True
    assert body["data"]["userCount"] == 2
    assert body["data"]["databaseUrl"] == "✅ Set"
    assert body["data"]["timestamp"]


def test_database_down_is_503_without_the_url(make_app):
    app = make_app(DATABASE_URL="postgresql://shop:s3cret-password@127.0.0.1:1/shop")
    client = app.test_client()
    for path in ("/api/test-db", "/api/health"):
        response = client.get(path)
        assert response.status_code == 503
        assert "s3cret" not in response.text and "127.0.0.1" not in response.text
    assert client.get("/api/test-db").json["status"] == "error"


def test_the_log_names_the_database_without_its_password(make_app, caplog):
    caplog.set_level("INFO", logger="shop")
    app = make_app(DATABASE_URL="postgres://shop:s3cret-password@db.example.com:5432/shop")
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert "db.example.com" in caplog.text
    assert "s3cret" not in caplog.text


def test_shell_context_preloads_models(app):
    with app.app_context():
        context = app.make_shell_context()
        assert {"db", "User", "Role", "Order", "OrderItem", "Product", "Cart", "OrderStatus"} <= context.keys()
        assert context["db"].session.scalar(select(context["User"]).limit(1)) is None
    assert context["db"] is db


def test_missing_schema_says_to_run_migrations(make_app, database_url, tokens):
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(server.render_as_string(False), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop_test_empty WITH (FORCE)")
        conn.execute("CREATE DATABASE shop_test_empty")
    try:
        app = make_app(
            DATABASE_URL=server.set(drivername="postgresql+psycopg", database="shop_test_empty").render_as_string(False)
        )
        client = app.test_client()
        check = client.get("/api/test-db")
        assert check.status_code == 503 and "flask db upgrade" in check.json["message"]
        client.set_cookie("__session", tokens.mint("user_a"))
        page = client.get("/account")
        assert page.status_code == 503
        assert b"flask db upgrade" in page.data and b"Traceback" not in page.data
        with app.app_context():
            from shop.extensions import db

            db.engine.dispose()
    finally:
        with psycopg.connect(server.render_as_string(False), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS shop_test_empty WITH (FORCE)")


def test_test_db_says_embedded_when_no_database_url_is_set(app, client):
    app.config["DATABASE_URL"] = None  # as when `make run` starts the embedded PostgreSQL
    assert client.get("/api/test-db").json["data"]["databaseUrl"] == "embedded"
