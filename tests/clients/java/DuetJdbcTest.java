// pgjdbc (Debian's libpostgresql-jdbc-java) against a duet node: URL with
// sslmode=verify-full, prepared statements past prepareThreshold (server-
// side statements, binary transfer), batches, transactions and savepoints,
// generated keys, type round trips and DatabaseMetaData.
//
//   javac -d out DuetJdbcTest.java
//   java -cp out:/usr/share/java/postgresql.jar DuetJdbcTest 'jdbc:postgresql://...'
//
// Prints one line per check and exits non-zero on the first failure.

import java.math.BigDecimal;
import java.sql.*;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.*;

public class DuetJdbcTest {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("FAILED: " + what);
        }
        System.out.println("ok: " + what);
    }

    static <T> void same(T expected, T actual, String what) {
        check(Objects.equals(expected, actual), what + " (expected " + expected + ", got " + actual + ")");
    }

    public static void main(String[] args) throws Exception {
        String url = args[0];
        try (Connection c = DriverManager.getConnection(url)) {
            same("PostgreSQL", c.getMetaData().getDatabaseProductName(), "product name");
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE IF EXISTS jdbc_items");
                s.execute("CREATE TABLE jdbc_items (id serial PRIMARY KEY, name text NOT NULL, "
                        + "price numeric(10,2), at timestamptz, ok boolean, data bytea, n bigint)");
                s.execute("CREATE INDEX jdbc_items_name ON jdbc_items (name)");
            }
            generatedKeys(c);
            preparedPastThreshold(c);
            batches(c);
            transactionsAndSavepoints(c);
            roundTrips(c);
            errors(c);
            metadata(c);
        }
        System.out.println("all checks passed");
    }

    static void generatedKeys(Connection c) throws SQLException {
        try (PreparedStatement p = c.prepareStatement(
                "INSERT INTO jdbc_items (name, price) VALUES (?, ?)", Statement.RETURN_GENERATED_KEYS)) {
            p.setString(1, "first");
            p.setBigDecimal(2, new BigDecimal("1.50"));
            same(1, p.executeUpdate(), "insert count");
            try (ResultSet keys = p.getGeneratedKeys()) {
                check(keys.next(), "a generated key row");
                same(1, keys.getInt("id"), "generated id");
            }
        }
    }

    static void preparedPastThreshold(Connection c) throws SQLException {
        // pgjdbc switches to a named server-side statement (and binary
        // results) after prepareThreshold (5) executions.
        try (PreparedStatement p = c.prepareStatement("SELECT id, name, price, ? + 1 FROM jdbc_items WHERE id = ?")) {
            for (int i = 0; i < 12; i++) {
                p.setLong(1, i);
                p.setInt(2, 1);
                try (ResultSet r = p.executeQuery()) {
                    check(r.next(), "row on execution " + i);
                    same("first", r.getString(2), "name on execution " + i);
                    same(new BigDecimal("1.50"), r.getBigDecimal(3), "price on execution " + i);
                    same((long) i + 1, r.getLong(4), "parameter arithmetic on execution " + i);
                }
            }
        }
    }

    static void batches(Connection c) throws SQLException {
        try (PreparedStatement p = c.prepareStatement("INSERT INTO jdbc_items (name, n) VALUES (?, ?)")) {
            for (int i = 0; i < 100; i++) {
                p.setString(1, "batch-" + i);
                p.setLong(2, i);
                p.addBatch();
            }
            int[] counts = p.executeBatch();
            same(100, counts.length, "batch result count");
            check(Arrays.stream(counts).allMatch(n -> n == 1 || n == Statement.SUCCESS_NO_INFO), "each batch row inserted");
        }
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*), sum(n) FROM jdbc_items WHERE name LIKE 'batch-%'")) {
            r.next();
            same(100L, r.getLong(1), "batched rows");
            same(4950L, r.getLong(2), "batched values");
        }
    }

    static void transactionsAndSavepoints(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (Statement s = c.createStatement()) {
            s.executeUpdate("INSERT INTO jdbc_items (name) VALUES ('kept')");
            Savepoint sp = c.setSavepoint("before_oops");
            s.executeUpdate("INSERT INTO jdbc_items (name) VALUES ('undone')");
            try {
                s.executeUpdate("INSERT INTO jdbc_items (id, name) VALUES (1, 'duplicate')");
                check(false, "duplicate key must fail");
            } catch (SQLException e) {
                same("23505", e.getSQLState(), "duplicate key SQLSTATE");
            }
            c.rollback(sp);
            s.executeUpdate("INSERT INTO jdbc_items (name) VALUES ('after')");
            c.commit();
            s.executeUpdate("INSERT INTO jdbc_items (name) VALUES ('rolled back')");
            c.rollback();
        } finally {
            c.setAutoCommit(true);
        }
        try (Statement s = c.createStatement(); ResultSet r = s.executeQuery(
                "SELECT string_agg(name, ',' ORDER BY id) FROM jdbc_items WHERE name IN ('kept','undone','after','rolled back')")) {
            r.next();
            same("kept,after", r.getString(1), "savepoint and rollback outcome");
        }
    }

    static void roundTrips(Connection c) throws SQLException {
        OffsetDateTime at = OffsetDateTime.of(2024, 2, 29, 13, 14, 15, 123456000, ZoneOffset.ofHours(2));
        byte[] data = {0, 1, 2, (byte) 0xff, 10, 13};
        try (PreparedStatement p = c.prepareStatement(
                "INSERT INTO jdbc_items (name, price, at, ok, data) VALUES (?, ?, ?, ?, ?) RETURNING id")) {
            for (int i = 0; i < 7; i++) { // past prepareThreshold: binary parameters too
                p.setString(1, "typed-" + i);
                p.setBigDecimal(2, new BigDecimal("-12345678.90"));
                p.setObject(3, at);
                p.setBoolean(4, i % 2 == 0);
                p.setBytes(5, data);
                try (ResultSet r = p.executeQuery()) {
                    check(r.next(), "RETURNING row " + i);
                }
            }
        }
        try (PreparedStatement p = c.prepareStatement("SELECT price, at, ok, data FROM jdbc_items WHERE name = ?")) {
            for (int i = 0; i < 7; i++) {
                p.setString(1, "typed-" + i);
                try (ResultSet r = p.executeQuery()) {
                    check(r.next(), "typed row " + i);
                    same(new BigDecimal("-12345678.90"), r.getBigDecimal(1), "numeric " + i);
                    same(at.toInstant(), r.getObject(2, OffsetDateTime.class).toInstant(), "timestamptz " + i);
                    same(i % 2 == 0, r.getBoolean(3), "boolean " + i);
                    check(Arrays.equals(data, r.getBytes(4)), "bytea " + i);
                }
            }
        }
    }

    static void errors(Connection c) throws SQLException {
        try (Statement s = c.createStatement()) {
            try {
                s.executeQuery("SELECT 1/0");
                check(false, "division by zero must fail");
            } catch (SQLException e) {
                same("22012", e.getSQLState(), "division by zero SQLSTATE");
            }
            try (ResultSet r = s.executeQuery("SELECT 42")) {
                r.next();
                same(42, r.getInt(1), "connection usable after an error");
            }
        }
    }

    static void metadata(Connection c) throws SQLException {
        DatabaseMetaData md = c.getMetaData();
        try (ResultSet r = md.getTables(null, "public", "jdbc_items", new String[] {"TABLE"})) {
            check(r.next(), "getTables finds the table");
            same("jdbc_items", r.getString("TABLE_NAME"), "getTables TABLE_NAME");
            same("TABLE", r.getString("TABLE_TYPE"), "getTables TABLE_TYPE");
        }
        List<String> cols = new ArrayList<>();
        try (ResultSet r = md.getColumns(null, "public", "jdbc_items", null)) {
            while (r.next()) {
                cols.add(r.getString("COLUMN_NAME") + ":" + r.getString("TYPE_NAME") + ":" + r.getString("IS_NULLABLE"));
            }
        }
        same(List.of("id:serial:NO", "name:text:NO", "price:numeric:YES", "at:timestamptz:YES",
                "ok:bool:YES", "data:bytea:YES", "n:int8:YES"), cols, "getColumns");
        try (ResultSet r = md.getPrimaryKeys(null, "public", "jdbc_items")) {
            check(r.next(), "getPrimaryKeys finds the key");
            same("id", r.getString("COLUMN_NAME"), "primary key column");
            same("jdbc_items_pkey", r.getString("PK_NAME"), "primary key name");
        }
        Set<String> indexes = new TreeSet<>();
        try (ResultSet r = md.getIndexInfo(null, "public", "jdbc_items", false, false)) {
            while (r.next()) {
                indexes.add(r.getString("INDEX_NAME") + "(" + r.getString("COLUMN_NAME") + ")" + (r.getBoolean("NON_UNIQUE") ? "" : " unique"));
            }
        }
        same(new TreeSet<>(List.of("jdbc_items_name(name)", "jdbc_items_pkey(id) unique")), indexes, "getIndexInfo");
    }
}
