// PgJDBC through shadow-proxy: prepared statements past the prepare
// threshold (server-side named statements, binary transfer on), a
// transaction with a savepoint rolled back to, a rollback, COPY both ways
// (CopyManager), an error; numeric, date and timestamptz parameters and
// results past the threshold, which PgJDBC transfers in binary (requests
// v2 in the record). Run as a single-file program:
//   java -cp postgresql.jar JdbcWorkload.java jdbc:postgresql://...
import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.time.LocalDate;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import org.postgresql.copy.CopyManager;
import org.postgresql.core.BaseConnection;

public class JdbcWorkload {
  static void drain(ResultSet rows) throws SQLException {
    while (rows.next()) {}
    rows.close();
  }

  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0])) {
      try (PreparedStatement byId = c.prepareStatement("SELECT id, owner FROM accounts WHERE id <= ? ORDER BY id")) {
        for (int i = 0; i < 8; i++) {  // past prepareThreshold (5): a named statement, binary results
          byId.setInt(1, 10 + i);
          drain(byId.executeQuery());
        }
      }
      try (PreparedStatement typed = c.prepareStatement(
               "SELECT id, balance, opened, opened + ?::interval AS due, ?::timestamptz AS at FROM accounts "
               + "WHERE balance > ? AND opened < ? ORDER BY id")) {
        for (int i = 0; i < 8; i++) {  // past the threshold: binary numeric, date and timestamptz
          typed.setString(1, i + " days");
          typed.setObject(2, OffsetDateTime.of(2024, 5, 1, 12, 30, 0, 0, ZoneOffset.UTC).plusHours(i));
          typed.setBigDecimal(3, new BigDecimal("100.50").add(BigDecimal.valueOf(i)));
          typed.setObject(4, LocalDate.of(2024, 1, 20 + i));
          drain(typed.executeQuery());
        }
      }
      try (PreparedStatement update = c.prepareStatement("UPDATE accounts SET balance = balance + ?, opened = ? WHERE id = ?")) {
        for (int i = 0; i < 8; i++) {
          update.setBigDecimal(1, new BigDecimal("2.25"));
          update.setObject(2, LocalDate.of(2024, 2, 1 + i));
          update.setInt(3, 30 + i);
          update.executeUpdate();
        }
      }
      try (Statement s = c.createStatement()) {
        drain(s.executeQuery("SELECT count(*) FROM accounts"));
      }
      try (PreparedStatement update = c.prepareStatement("UPDATE accounts SET balance = balance + 5 WHERE id = ?")) {
        update.setInt(1, 3);
        update.executeUpdate();
      }
      try (PreparedStatement insert = c.prepareStatement("INSERT INTO notes VALUES (?, ?, ?)")) {
        insert.setInt(1, 1);
        insert.setInt(2, 3);
        insert.setString(3, "first");
        insert.executeUpdate();
        c.setAutoCommit(false);
        try (Statement s = c.createStatement()) {
          s.executeUpdate("UPDATE accounts SET balance = balance - 1 WHERE id = 4");
        }
        Savepoint beforeNote = c.setSavepoint("before_note");
        try {
          insert.setInt(1, 1);
          insert.setInt(2, 4);
          insert.setString(3, "a duplicate");
          insert.executeUpdate();
          throw new IllegalStateException("the duplicate insert succeeded");
        } catch (SQLException expected) {
          c.rollback(beforeNote);
        }
        insert.setInt(1, 2);
        insert.setInt(2, 4);
        insert.setString(3, "second");
        insert.executeUpdate();
        c.commit();
      }
      try (Statement s = c.createStatement()) {
        s.executeUpdate("DELETE FROM notes WHERE id = 1");
        c.rollback();
        c.setAutoCommit(true);
        try {
          drain(s.executeQuery("SELECT no_such_column FROM accounts"));
          throw new IllegalStateException("the bad column was found");
        } catch (SQLException expected) {
        }
      }
      CopyManager copy = new CopyManager(c.unwrap(BaseConnection.class));
      copy.copyOut("COPY (SELECT id, owner FROM accounts WHERE id <= 5 ORDER BY id) TO STDOUT", new StringWriter());
      copy.copyIn("COPY imports FROM STDIN", new StringReader("1\tone\n2\ttwo\n"));
      try (Statement s = c.createStatement()) {
        drain(s.executeQuery("SELECT * FROM notes ORDER BY id"));
      }
    }
  }
}
