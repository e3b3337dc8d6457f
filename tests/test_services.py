"""The PostgreSQL test fixtures themselves work (a real server, real databases)."""

import psycopg


def test_postgres_server_accepts_queries(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_database()").fetchone() == ("conveyor",)


def test_fresh_postgres_url_is_a_new_writable_database(
    fresh_postgres_url: str, postgres_url: str
) -> None:
    assert fresh_postgres_url != postgres_url
    with psycopg.connect(fresh_postgres_url) as conn:
        conn.execute("create table widgets (id int primary key, name text not null)")
        conn.execute("insert into widgets values (1, 'a'), (2, 'b')")
        assert conn.execute("select count(*) from widgets").fetchone() == (2,)

    # The table lives only in the fresh database, not in the shared one.
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("select to_regclass('public.widgets')").fetchone()
        assert row == (None,)
