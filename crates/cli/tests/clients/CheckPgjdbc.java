// pgjdbc (Debian's libpostgresql-jdbc-java) against `rvbbit serve sql` (the server has `[sql.tables]
// animals = "animals.csv"`: id, name, weight, three rows). Run by crates/cli/tests/it/clients.rs with the
// port as its argument; prints the same lines as clientcheck.py (one per check, then the summary).
import java.sql.*;
import java.util.*;

public class CheckPgjdbc {
    interface Check { void run() throws Exception; }

    static Connection conn;
    static int passed, failed, gaps;

    static void expect(Object actual, Object expected, String what) {
        boolean same = (actual instanceof int[] && expected instanceof int[])
            ? Arrays.equals((int[]) actual, (int[]) expected)
            : Objects.equals(actual, expected);
        if (!same) {
            String a = actual instanceof int[] ? Arrays.toString((int[]) actual) : String.valueOf(actual);
            String e = expected instanceof int[] ? Arrays.toString((int[]) expected) : String.valueOf(expected);
            throw new AssertionError(what + ": expected " + e + ", got " + a);
        }
    }

    static void check(String name, String gap, Check check) {
        String error = null;
        try {
            check.run();
        } catch (Throwable e) {
            String state = e instanceof SQLException ? " [" + ((SQLException) e).getSQLState() + "]" : "";
            error = e.getClass().getSimpleName() + state + ": " + String.valueOf(e.getMessage()).replaceAll("\\s+", " ");
            if (error.length() > 400) error = error.substring(0, 400);
        }
        if (gap == null && error == null) { passed++; System.out.println("ok   " + name); }
        else if (gap == null) { failed++; System.out.println("FAIL " + name + ": " + error); }
        else if (error == null) { failed++; System.out.println("FAIL " + name + ": passes now; remove its gap mark (" + gap + ")"); }
        else { gaps++; System.out.println("gap  " + name + ": " + gap + " (" + error + ")"); }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/lab?user=java";
        System.out.println("version " + Class.forName("org.postgresql.util.DriverInfo").getField("DRIVER_VERSION").get(null));
        check("connect and product version", null, () -> {
            conn = DriverManager.getConnection(url);
            expect(conn.getMetaData().getDatabaseProductName(), "PostgreSQL", "product");
            expect(conn.getMetaData().getDatabaseMajorVersion(), 16, "major version");
        });
        check("prepared select with typed parameters", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT name FROM animals WHERE id = ? AND weight > ?")) {
                ps.setInt(1, 2);
                ps.setDouble(2, 1.0);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    expect(rs.getString(1), "dog", "name");
                }
            }
        });
        check("prepared statement reused past prepareThreshold", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT ? * 2 AS d")) {
                int sum = 0;
                for (int i = 1; i <= 7; i++) {
                    ps.setLong(1, i);
                    try (ResultSet rs = ps.executeQuery()) { rs.next(); sum += rs.getInt(1); }
                }
                expect(sum, 56, "sum");
            }
        });
        check("executeUpdate of CREATE TABLE and a plain INSERT", null, () -> {
            try (Statement st = conn.createStatement()) {
                expect(st.executeUpdate("CREATE TABLE notes (id INT, body VARCHAR)"), 0, "create");
                expect(st.executeUpdate("INSERT INTO notes VALUES (1, 'a'), (2, 'b')"), 2, "insert");
            }
        });
        check("executeUpdate of a prepared INSERT returns its row count", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO notes VALUES (?, ?)")) {
                ps.setInt(1, 3);
                ps.setString(2, "c");
                expect(ps.executeUpdate(), 1, "rows");
            }
        });
        check("executeBatch returns [1, 1, 1]", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("INSERT INTO notes VALUES (?, ?)")) {
                for (int i = 10; i < 13; i++) { ps.setInt(1, i); ps.setString(2, "n" + i); ps.addBatch(); }
                expect(ps.executeBatch(), new int[] {1, 1, 1}, "batch");
            }
        });
        check("executeUpdate of UPDATE and DELETE", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("UPDATE notes SET body = ? WHERE id >= ?")) {
                ps.setString(1, "z");
                ps.setInt(2, 10);
                expect(ps.executeUpdate(), 3, "update");
            }
            try (Statement st = conn.createStatement()) {
                expect(st.executeUpdate("DELETE FROM notes WHERE id = 12"), 1, "delete");
            }
        });
        check("manual commit", null, () -> {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM notes")) {
                rs.next();
                expect(rs.getLong(1), 5L, "count");
            }
            conn.commit();
            conn.setAutoCommit(true);
        });
        check("setArray with = ANY(?)", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT id FROM animals WHERE id = ANY(?) ORDER BY id")) {
                ps.setArray(1, conn.createArrayOf("int4", new Integer[] {1, 3}));
                List<Integer> ids = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) { while (rs.next()) ids.add(rs.getInt(1)); }
                expect(ids, List.of(1, 3), "ids");
            }
        });
        check("setArray of text", null, () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT id FROM animals WHERE name = ANY(?) ORDER BY id")) {
                ps.setArray(1, conn.createArrayOf("text", new String[] {"owl", "dog"}));
                List<Integer> ids = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) { while (rs.next()) ids.add(rs.getInt(1)); }
                expect(ids, List.of(2, 3), "ids");
            }
        });
        check("an error carries its SQLState and the connection stays usable", null, () -> {
            String state = null;
            try (Statement st = conn.createStatement()) { st.executeQuery("SELECT * FROM missing_table"); }
            catch (SQLException e) { state = e.getSQLState(); }
            expect(state, "42P01", "sqlstate");
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery("SELECT 1 AS one")) {
                rs.next();
                expect(rs.getInt(1), 1, "after the error");
            }
        });
        check("getTables lists the [sql.tables] file", null, () -> {
            List<String> names = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getTables(null, null, "%", null)) {
                while (rs.next()) names.add(rs.getString("TABLE_NAME"));
            }
            expect(names.contains("animals"), true, "animals in " + names);
        });
        check("getColumns of animals", null, () -> {
            List<String> cols = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getColumns(null, null, "animals", "%")) {
                while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            expect(cols, List.of("id:int8", "name:text", "weight:float8"), "columns");
        });
        check("getTypeInfo lists the types", null, () -> {
            List<String> names = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getTypeInfo()) { while (rs.next()) names.add(rs.getString("TYPE_NAME")); }
            expect(names.containsAll(List.of("int4", "text", "float8", "_int4")), true, "int4, text, float8, _int4 in " + names);
        });
        check("getSQLKeywords", null, () -> {
            expect(conn.getMetaData().getSQLKeywords().isEmpty(), false, "keywords");
        });
        System.out.println("pgjdbc: " + passed + " passed, " + failed + " failed" + (gaps > 0 ? ", " + gaps + " known gaps" : ""));
        System.exit(failed > 0 ? 1 : 0);
    }
}
