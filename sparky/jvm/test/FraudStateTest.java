package loanstream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.catalyst.expressions.GenericRowWithSchema;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.Test;

/** FraudState's two keyed steps on their own: a key's state carried from batch to batch here. */
class FraudStateTest {
  static final long MINUTE = 60_000_000L; // µs
  static final StructType APP =
      new StructType()
          .add("application_id", DataTypes.StringType)
          .add("event_us", DataTypes.LongType)
          .add("customer_key", DataTypes.LongType)
          .add("source_partition", DataTypes.IntegerType)
          .add("source_offset", DataTypes.LongType)
          .add("kind", DataTypes.StringType);

  static FraudState state(int maxEvents) {
    return new FraudState(
        "{\"dedup_ms\": 600000, \"horizon_ms\": 86400000, \"max_events\": " + maxEvents
            + ", \"windows\": {\"5m\": 300, \"1h\": 3600, \"24h\": 86400}}");
  }

  static Row app(String id, double minutes, long customer, long offset) {
    return new GenericRowWithSchema(
        new Object[] {id, (long) (minutes * MINUTE), customer, 0, offset, "device"}, APP);
  }

  /** One key's state across micro-batches, as the processors keep it. */
  static final class Key<S> {
    S value;
  }

  static List<Row> dedupe(FraudState fraud, Key<Long> key, Row... rows) {
    List<Row> out = new ArrayList<>();
    key.value = fraud.deduplicate(key.value, new ArrayList<>(List.of(rows)), out);
    return out;
  }

  static List<Row> count(FraudState fraud, Key<long[][]> key, Row... rows) {
    List<Row> out = new ArrayList<>();
    long[][] kept = fraud.count(key.value == null ? new long[0][] : key.value, List.of(rows), out);
    if (kept != null) {
      key.value = FraudState.unpack(FraudState.pack(kept)); // through the stored form
    }
    return out;
  }

  static Long duplicateOf(Row row) {
    return (Long) row.get(APP.length());
  }

  @Test
  void aRepeatedIdIsADuplicateOfTheFirstWithinTheHorizonOnly() throws Exception {
    FraudState fraud = state(1000);
    Key<Long> a = new Key<>();
    List<Row> first = dedupe(fraud, a, app("a", 1, 2, 2), app("a", 0, 1, 0));
    assertNull(duplicateOf(first.get(0))); // the earlier event time is the first, whatever the arrival
    assertEquals(0L, duplicateOf(first.get(1)));
    assertEquals(0L, a.value);
    List<Row> later = dedupe(fraud, a, app("a", 5, 3, 3));
    assertEquals(0L, duplicateOf(later.get(0))); // 5 minutes after: a duplicate of the first
    List<Row> beyond = dedupe(fraud, a, app("a", 13, 4, 4));
    assertNull(duplicateOf(beyond.get(0))); // 13 minutes after the first: new again
    assertEquals(13 * MINUTE, a.value);
  }

  @Test
  void velocityCountsWindowsAndDistinctCustomersAndCarriesHistoryAcrossBatches() throws Exception {
    FraudState fraud = state(1000);
    Key<long[][]> device = new Key<>();
    List<Row> first = count(fraud, device, app("a", 0, 10, 0), app("b", 1, 11, 1), app("c", 2, 12, 2));
    // apps 5m, 1h, 24h then customers 5m, 1h, 24h, after the input's columns
    assertArrayEquals(new Object[] {3L, 3L, 3L, 3L, 3L, 3L}, counts(first.get(2)));
    assertArrayEquals(new Object[] {1L, 1L, 1L, 1L, 1L, 1L}, counts(first.get(0)));
    List<Row> later = count(fraud, device, app("d", 30, 10, 3));
    assertArrayEquals(new Object[] {1L, 4L, 4L, 1L, 3L, 3L}, counts(later.get(0))); // customer 10 twice
    List<Row> nextDay = count(fraud, device, app("e", 24 * 60 + 1.5, 13, 4));
    assertArrayEquals(new Object[] {1L, 1L, 3L, 1L, 1L, 3L}, counts(nextDay.get(0))); // (t - 24 h, t]: c, d, e
    assertEquals(3, device.value.length); // a at 0 and b at 1 minute: 24 h behind
  }

  @Test
  void aValueKeepsAtMostMaxEventsAndCountsSaturate() throws Exception {
    FraudState fraud = state(3);
    Key<long[][]> device = new Key<>();
    Row[] rows = new Row[5];
    for (int i = 0; i < 5; i++) {
      rows[i] = app("a" + i, i, i, i);
    }
    List<Row> out = count(fraud, device, rows);
    long[] customers24h = out.stream().mapToLong(r -> (Long) r.get(APP.length() + 5)).sorted().toArray();
    assertArrayEquals(new long[] {1, 2, 3, 3, 3}, customers24h);
    assertEquals(3, device.value.length);
    assertEquals(2L, device.value[0][0]); // the last three customers
  }

  @Test
  void aDuplicatesRowPassesWithoutCountsAndTouchesNoState() throws Exception {
    FraudState fraud = state(1000);
    Key<long[][]> key = new Key<>();
    Row duplicate =
        new GenericRowWithSchema(new Object[] {"a", 0L, 1L, 0, 5L, FraudState.APPLICATION}, APP);
    List<Row> out = count(fraud, key, duplicate);
    assertEquals(1, out.size());
    assertNull(out.get(0).get(APP.length()));
    assertNull(key.value);
  }

  static Object[] counts(Row row) {
    Object[] out = new Object[6];
    for (int i = 0; i < 6; i++) {
      out[i] = row.get(APP.length() + i);
    }
    return out;
  }
}
