// Which node pgjdbc picks from a multi-host URL (targetServerType=...):
// prints "port=<inet_server_port()> recovery=<pg_is_in_recovery()>".
//
//   javac -d out DuetRouting.java
//   java -cp out:/usr/share/java/postgresql.jar DuetRouting 'jdbc:postgresql://h1:p1,h2:p2/db?targetServerType=primary&...'

import java.sql.*;

public class DuetRouting {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0]);
             Statement s = c.createStatement();
             ResultSet r = s.executeQuery("SELECT inet_server_port(), pg_is_in_recovery()")) {
            r.next();
            System.out.println("port=" + r.getInt(1) + " recovery=" + r.getBoolean(2));
        }
    }
}
