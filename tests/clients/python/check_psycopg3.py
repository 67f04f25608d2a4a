"""psycopg 3 (from PyPI) against duet: server-side parameters (extended
protocol, binary too), type adaptation, COPY in both directions,
transactions, server-side cursors, pipeline mode, errors.

    python3 check_psycopg3.py 'postgresql://...'

Prints one line per check; an AssertionError (exit 1) names what failed.
"""
import datetime
import decimal
import sys
import uuid

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

url = sys.argv[1]
checks = 0


def check(ok, what):
    global checks
    assert ok, "FAILED: " + what
    checks += 1
    print("ok:", what)


with psycopg.connect(url) as conn:
    conn.execute("DROP TABLE IF EXISTS py3_items")
    conn.execute(
        "CREATE TABLE py3_items (id bigserial PRIMARY KEY, name text NOT NULL, price numeric(10,2),"
        " at timestamptz, ok boolean, data bytea, doc jsonb, ref uuid, span interval, tags int[])"
    )
    conn.commit()

    at = datetime.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=datetime.timezone.utc)
    ref = uuid.uuid4()
    values = ("naïve", decimal.Decimal("-3.75"), at, False, b"\x00\xff", Jsonb({"a": [1, None]}), ref,
              datetime.timedelta(days=1, hours=2), [1, 2, 3])
    insert = ("INSERT INTO py3_items (name, price, at, ok, data, doc, ref, span, tags)"
              " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id")
    (first,) = conn.execute(insert, values).fetchone()
    check(first == 1, "INSERT ... RETURNING with server-side parameters")
    select = "SELECT name, price, at, ok, data, doc, ref, span, tags FROM py3_items WHERE id = %s"
    for binary in (False, True):
        row = conn.cursor(binary=binary).execute(select, (first,)).fetchone()
        kind = "binary" if binary else "text"
        check(row[0] == "naïve", f"text round trip ({kind})")
        check(row[1] == decimal.Decimal("-3.75"), f"numeric ({kind})")
        check(row[2] == at, f"timestamptz ({kind})")
        check(row[3] is False, f"boolean ({kind})")
        check(row[4] == b"\x00\xff", f"bytea ({kind})")
        check(row[5] == {"a": [1, None]}, f"jsonb ({kind})")
        check(row[6] == ref, f"uuid ({kind})")
        check(row[7] == datetime.timedelta(days=1, hours=2), f"interval ({kind})")
        check(row[8] == [1, 2, 3], f"int[] ({kind})")
    conn.commit()

    # COPY in both directions.
    with conn.cursor() as cur:
        with cur.copy("COPY py3_items (name, price) FROM STDIN") as copy:
            for i in range(50):
                copy.write_row((f"copied-{i}", decimal.Decimal(i)))
        check(cur.rowcount == 50, "COPY FROM STDIN with write_row")
        with cur.copy("COPY (SELECT name, price FROM py3_items WHERE name LIKE 'copied-%' ORDER BY id) TO STDOUT") as copy:
            rows = list(copy.rows())
        check(len(rows) == 50 and rows[3] == ("copied-3", "3.00"), "COPY TO STDOUT rows")
    conn.commit()

    # Transactions: the context manager commits, an error rolls back.
    with conn.transaction():
        conn.execute("INSERT INTO py3_items (name) VALUES ('in tx')")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO py3_items (name) VALUES ('rolled back')")
            conn.execute("SELECT 1/0")
    except errors.DivisionByZero:
        check(True, "DivisionByZero rolls the block back")
    (kept, gone) = conn.execute(
        "SELECT count(*) FILTER (WHERE name = 'in tx'), count(*) FILTER (WHERE name = 'rolled back') FROM py3_items"
    ).fetchone()
    check((kept, gone) == (1, 0), "transaction blocks")
    conn.commit()

    # Server-side cursor.
    with conn.transaction():
        with conn.cursor(name="py3_cursor") as named:
            named.itersize = 9
            named.execute("SELECT id, name FROM py3_items ORDER BY id")
            rows = list(named)
    check(len(rows) == 52 and rows[0] == (1, "naïve"), "server-side cursor")

    # Prepared statements and pipeline mode.
    for i in range(8):
        conn.execute("SELECT %s::int + 1", (i,), prepare=True).fetchone()
    with conn.pipeline():
        curs = [conn.execute("SELECT %s::bigint * 2", (i,)) for i in range(20)]
    check([c.fetchone()[0] for c in curs] == [i * 2 for i in range(20)], "pipeline mode")

    try:
        conn.execute("INSERT INTO py3_items (id, name) VALUES (1, 'dup')")
    except errors.UniqueViolation as e:
        check(e.sqlstate == "23505", "UniqueViolation")
        conn.rollback()
    check(conn.execute("SELECT 42").fetchone()[0] == 42, "usable after an error")

print(f"all {checks} checks passed")
