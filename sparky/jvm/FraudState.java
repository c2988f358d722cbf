package loanstream;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.time.Duration;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.streaming.OutputMode;
import org.apache.spark.sql.streaming.StatefulProcessor;
import org.apache.spark.sql.streaming.TTLConfig;
import org.apache.spark.sql.streaming.TimeMode;
import org.apache.spark.sql.streaming.TimerValues;
import org.apache.spark.sql.streaming.ValueState;
import scala.jdk.javaapi.CollectionConverters;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Fraud's keyed state, in the JVM (sparky/analyses/fraud.py declares what it counts and flags): two
 * {@code transformWithState} operators in one query, each key's state a value with a time to live in
 * the RocksDB store, so a micro-batch's cost follows the keys it touches (and those whose time ran
 * out: Spark keeps them in expiry order), never the size of the state.
 *
 * <ol>
 *   <li>Per application id: its first event time. A copy within {@code dedup_ms} of event time of
 *       the first (in event time, partition, offset order) is a duplicate: it gets {@code
 *       duplicate_of_us} and is not counted. The id lives {@code dedup_ms} after it was last seen
 *       (processing time).
 *   <li>Per entity value (a device, IP, SSN hash or phone: {@code value_key}, a hash of kind and
 *       value): its events (customer, event time) of the last {@code horizon_ms} of event time, at
 *       most {@code max_events}. Each application gets, per window, the applications and the
 *       distinct customers on that value in (t - window, t], itself included; the value lives
 *       {@code horizon_ms} after it was last seen (processing time), so the state stays bounded.
 * </ol>
 *
 * Output: one row per application and entity kind (the input's columns, {@code kind},
 * {@code apps_<window>}, {@code customers_<window>}), and one row (kind {@code application}) per
 * duplicate.
 */
public final class FraudState implements Serializable {
  private static final long serialVersionUID = 1L;
  static final String APPLICATION = "application"; // the pseudo-kind of a duplicate's row

  private final long dedupMs;
  private final long horizonMs;
  private final int maxEvents;
  private final String[] windows;
  private final long[] windowUs;

  FraudState(String config) {
    JsonNode c;
    try {
      c = new ObjectMapper().readTree(config);
    } catch (IOException e) {
      throw new IllegalArgumentException("not a fraud state configuration: " + e.getMessage(), e);
    }
    dedupMs = c.get("dedup_ms").asLong();
    horizonMs = c.get("horizon_ms").asLong();
    maxEvents = c.get("max_events").asInt();
    List<String> names = new ArrayList<>();
    c.get("windows").fieldNames().forEachRemaining(names::add);
    windows = names.toArray(new String[0]);
    windowUs = names.stream().mapToLong(n -> c.get("windows").get(n).asLong() * 1_000_000L).toArray();
  }

  /**
   * The signal rows of {@code applications} (see the class comment): its columns must include
   * application_id, event_us, customer_key, source_partition, source_offset and entities (array of
   * kind, value_key).
   */
  public static Dataset<Row> signals(Dataset<Row> applications, String config) {
    FraudState state = new FraudState(config);
    applications.sparkSession().streams(); // a batch Dataset's state stores need the coordinator it starts
    StructType checked = applications.schema().add("duplicate_of_us", DataTypes.LongType, true);
    Dataset<Row> firsts =
        applications
            .groupByKey((MapFunction<Row, String>) r -> r.getAs("application_id"), Encoders.STRING())
            .transformWithState(new Deduplicate(state), TimeMode.ProcessingTime(), OutputMode.Append(), Encoders.row(checked));
    Column duplicate = functions.col("duplicate_of_us").isNotNull();
    Column itself =
        functions.array(
            functions.struct(
                functions.lit(APPLICATION).alias("kind"),
                functions.xxhash64(functions.lit(APPLICATION), functions.col("application_id")).alias("value_key")));
    List<Column> kept = new ArrayList<>();
    for (String name : checked.fieldNames()) {
      if (!name.equals("entities")) {
        kept.add(functions.col(name));
      }
    }
    kept.add(functions.explode(functions.when(duplicate, itself).otherwise(functions.col("entities"))).alias("e"));
    Dataset<Row> rows = firsts.select(kept.toArray(new Column[0])).select(functions.col("*"), functions.col("e.*")).drop("e");
    StructType counted = rows.schema();
    for (String prefix : new String[] {"apps_", "customers_"}) {
      for (String w : state.windows) {
        counted = counted.add(prefix + w, DataTypes.LongType, true);
      }
    }
    return rows.groupByKey((MapFunction<Row, Long>) r -> r.getAs("value_key"), Encoders.LONG())
        .transformWithState(new Velocity(state), TimeMode.ProcessingTime(), OutputMode.Append(), Encoders.row(counted));
  }

  /** Stage 1: per application id, its first event time. */
  static final class Deduplicate extends StatefulProcessor<String, Row, Row> {
    private static final long serialVersionUID = 1L;
    private final FraudState fraud;
    private transient ValueState<Long> first;

    Deduplicate(FraudState fraud) {
      this.fraud = fraud;
    }

    @Override
    public void init(OutputMode mode, TimeMode time) {
      first = getHandle().getValueState("first", Encoders.LONG(), TTLConfig.apply(Duration.ofMillis(fraud.dedupMs)));
    }

    @Override
    public scala.collection.Iterator<Row> handleInputRows(String id, scala.collection.Iterator<Row> rows, TimerValues timers) {
      List<Row> out = new ArrayList<>();
      Long last = fraud.deduplicate(first.exists() ? first.get() : null, drain(rows), out);
      first.update(last);
      return CollectionConverters.asScala(out.iterator());
    }
  }

  /** Stage 2: per entity value, its recent events. */
  static final class Velocity extends StatefulProcessor<Long, Row, Row> {
    private static final long serialVersionUID = 1L;
    private final FraudState fraud;
    private transient ValueState<byte[]> events;

    Velocity(FraudState fraud) {
      this.fraud = fraud;
    }

    @Override
    public void init(OutputMode mode, TimeMode time) {
      events = getHandle().getValueState("events", Encoders.BINARY(), TTLConfig.apply(Duration.ofMillis(fraud.horizonMs)));
    }

    @Override
    public scala.collection.Iterator<Row> handleInputRows(Long key, scala.collection.Iterator<Row> rows, TimerValues timers) {
      List<Row> out = new ArrayList<>();
      long[][] kept = fraud.count(unpack(events.exists() ? events.get() : new byte[0]), drain(rows), out);
      if (kept != null) {
        events.update(pack(kept));
      }
      return CollectionConverters.asScala(out.iterator());
    }
  }

  private static List<Row> drain(scala.collection.Iterator<Row> rows) {
    List<Row> list = new ArrayList<>();
    while (rows.hasNext()) {
      list.add(rows.next());
    }
    return list;
  }

  private static final Comparator<Row> ARRIVAL =
      Comparator.comparingLong((Row r) -> r.<Long>getAs("event_us"))
          .thenComparingInt(r -> r.<Integer>getAs("source_partition"))
          .thenComparingLong(r -> r.<Long>getAs("source_offset"));

  /**
   * The rows of one application id in one micro-batch, given its first event time so far ({@code
   * earlier}, null if none), each with {@code duplicate_of_us} (null: counted) into {@code out};
   * returns the first event time to keep.
   */
  Long deduplicate(Long earlier, List<Row> rows, List<Row> out) {
    long horizonUs = dedupMs * 1000;
    rows.sort(ARRIVAL);
    Long firstHere = null;
    Long last = earlier;
    for (Row row : rows) {
      long t = row.<Long>getAs("event_us");
      boolean seenBefore = earlier != null && t - earlier <= horizonUs;
      boolean again = firstHere != null && t - firstHere <= horizonUs;
      if (firstHere == null) {
        firstHere = t;
      }
      Long duplicateOf = seenBefore ? earlier : again ? firstHere : null;
      if (duplicateOf == null) {
        last = t;
      }
      out.add(with(row, duplicateOf));
    }
    return last;
  }

  /**
   * The rows of one entity value in one micro-batch, given its events so far, each with its counts
   * into {@code out} (a duplicate's row passed on, not counted); returns the events to keep (null:
   * no change).
   */
  long[][] count(long[][] history, List<Row> rows, List<Row> out) {
    List<Row> counted = new ArrayList<>();
    for (Row r : rows) {
      if (APPLICATION.equals(r.getAs("kind"))) {
        out.add(with(r, new Long[2 * windows.length]));
      } else {
        counted.add(r);
      }
    }
    if (counted.isEmpty()) {
      return null;
    }
    long[][] events = merge(history, counted); // [customer, time, index of a new row or -1], by time
    for (long[] e : events) {
      if (e[2] >= 0) {
        out.add(with(counted.get((int) e[2]), counts(events, e[1])));
      }
    }
    return kept(events);
  }

  /** History and the new rows' events, sorted by time (stable: history first). */
  private static long[][] merge(long[][] history, List<Row> rows) {
    long[][] all = Arrays.copyOf(history, history.length + rows.size());
    for (int i = 0; i < rows.size(); i++) {
      Row r = rows.get(i);
      all[history.length + i] = new long[] {r.<Long>getAs("customer_key"), r.<Long>getAs("event_us"), i};
    }
    Arrays.sort(all, Comparator.comparingLong((long[] e) -> e[1]));
    return all;
  }

  /**
   * Per window, the events in (t - window, t], then the distinct customers among them (of the last
   * {@code maxEvents} up to t), as sparky/analyses/fraud.py always counted them.
   */
  Long[] counts(long[][] events, long t) {
    int upper = upperBound(events, t);
    Long[] out = new Long[2 * windows.length];
    for (int w = 0; w < windows.length; w++) {
      int lower = upperBound(events, t - windowUs[w]);
      out[w] = (long) (upper - lower);
      Set<Long> customers = new HashSet<>();
      for (int i = Math.max(lower, upper - maxEvents); i < upper; i++) {
        customers.add(events[i][0]);
      }
      out[windows.length + w] = (long) customers.size();
    }
    return out;
  }

  /** The first index whose time is after {@code t}. */
  private static int upperBound(long[][] events, long t) {
    int lo = 0;
    int hi = events.length;
    while (lo < hi) {
      int mid = (lo + hi) >>> 1;
      if (events[mid][1] <= t) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  /** What the value keeps: its last maxEvents events, none older than its newest minus the horizon. */
  long[][] kept(long[][] events) {
    long newest = events[events.length - 1][1];
    int from = Math.max(0, events.length - maxEvents);
    int first = upperBound(events, newest - horizonMs * 1000);
    return Arrays.copyOfRange(events, Math.max(from, first), events.length);
  }

  static byte[] pack(long[][] events) {
    ByteBuffer out = ByteBuffer.allocate(events.length * 16);
    for (long[] e : events) {
      out.putLong(e[0]).putLong(e[1]);
    }
    return out.array();
  }

  static long[][] unpack(byte[] bytes) {
    ByteBuffer in = ByteBuffer.wrap(bytes);
    long[][] out = new long[bytes.length / 16][];
    for (int i = 0; i < out.length; i++) {
      out[i] = new long[] {in.getLong(), in.getLong(), -1};
    }
    return out;
  }

  /** {@code row} with {@code extra} appended. */
  private static Row with(Row row, Object... extra) {
    Object[] values = new Object[row.length() + extra.length];
    for (int i = 0; i < row.length(); i++) {
      values[i] = row.get(i);
    }
    System.arraycopy(extra, 0, values, row.length(), extra.length);
    return RowFactory.create(values);
  }

  private static Row with(Row row, Long[] counts) {
    return with(row, (Object[]) counts);
  }
}
