"""psycopg2 (Debian's python3-psycopg2) against duet: parameters, type
adaptation, COPY, transactions and savepoints, server-side cursors, errors.

    python3 check_psycopg2.py 'postgresql://...'

Prints one line per check; an AssertionError (exit 1) names what failed.
"""
import datetime
import decimal
import io
import sys
import uuid

import psycopg2
import psycopg2.errors
import psycopg2.extras

url = sys.argv[1]
checks = 0


def check(ok, what):
    global checks
    assert ok, "FAILED: " + what
    checks += 1
    print("ok:", what)


conn = psycopg2.connect(url)
psycopg2.extras.register_uuid()
cur = conn.cursor()
cur.execute("DROP TABLE IF EXISTS py2_items")
cur.execute(
    "CREATE TABLE py2_items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2),"
    " at timestamptz, day date, ok boolean, data bytea, tags text[], doc jsonb, ref uuid)"
)
conn.commit()

# Parameters and type adaptation, both ways.
at = datetime.datetime(2024, 2, 29, 13, 14, 15, 123456, tzinfo=datetime.timezone.utc)
ref = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
cur.execute(
    "INSERT INTO py2_items (name, price, at, day, ok, data, tags, doc, ref)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
    ("it's", decimal.Decimal("12.30"), at, datetime.date(2024, 3, 1), True,
     psycopg2.Binary(b"\x00\x01\xff"), ["a", "b c"], psycopg2.extras.Json({"k": [1, 2]}), ref),
)
check(cur.fetchone()[0] == 1, "INSERT ... RETURNING with every parameter type")
cur.execute("SELECT name, price, at, day, ok, data, tags, doc, ref FROM py2_items WHERE id = %(id)s", {"id": 1})
row = cur.fetchone()
check(row[0] == "it's", "text with a quote")
check(row[1] == decimal.Decimal("12.30"), "numeric as Decimal")
check(row[2] == at, "timestamptz as aware datetime")
check(row[3] == datetime.date(2024, 3, 1), "date")
check(row[4] is True, "boolean")
check(bytes(row[5]) == b"\x00\x01\xff", "bytea")
check(row[6] == ["a", "b c"], "text[]")
check(row[7] == {"k": [1, 2]}, "jsonb as dict")
check(row[8] == ref, "uuid")
conn.commit()

# executemany and COPY.
cur.executemany("INSERT INTO py2_items (name) VALUES (%s)", [("many-%d" % i,) for i in range(20)])
buf = io.StringIO("".join("copied-%d\t%d.5\n" % (i, i) for i in range(100)))
cur.copy_expert("COPY py2_items (name, price) FROM STDIN", buf)
check(cur.rowcount == 100, "COPY FROM STDIN row count")
out = io.StringIO()
cur.copy_expert("COPY (SELECT name FROM py2_items WHERE name LIKE 'copied-%' ORDER BY id LIMIT 3) TO STDOUT WITH CSV HEADER", out)
check(out.getvalue() == "name\ncopied-0\ncopied-1\ncopied-2\n", "COPY TO STDOUT csv")
conn.commit()

# Transactions, savepoints, errors that leave the connection usable.
cur.execute("INSERT INTO py2_items (name) VALUES ('kept')")
cur.execute("SAVEPOINT s1")
try:
    cur.execute("INSERT INTO py2_items (id, name) VALUES (1, 'duplicate')")
    check(False, "duplicate key must fail")
except psycopg2.errors.UniqueViolation as e:
    check(e.pgcode == "23505", "UniqueViolation with SQLSTATE 23505")
cur.execute("ROLLBACK TO SAVEPOINT s1")
conn.commit()
cur.execute("INSERT INTO py2_items (name) VALUES ('gone')")
conn.rollback()
cur.execute("SELECT count(*) FILTER (WHERE name = 'kept'), count(*) FILTER (WHERE name = 'gone') FROM py2_items")
check(cur.fetchone() == (1, 0), "commit keeps, rollback drops")
try:
    cur.execute("SELECT 1/0")
    check(False, "division by zero must fail")
except psycopg2.errors.DivisionByZero:
    conn.rollback()
    check(True, "DivisionByZero")

# A server-side (named) cursor: DECLARE / FETCH in batches.
named = conn.cursor(name="py2_cursor")
named.itersize = 7
named.execute("SELECT id, name FROM py2_items ORDER BY id")
rows = list(named)
check(len(rows) == 122 and rows[0] == (1, "it's"), "named cursor iterates every row")
named.close()
conn.commit()

conn.close()
print("all %d checks passed" % checks)
