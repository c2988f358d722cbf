package loanstream;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.spark.sql.ForeachWriter;
import org.apache.spark.sql.Row;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A real-time query's Kafka output, exactly once for read_committed consumers: Spark's foreach
 * writer in the JVM, so each row is written as it arrives (pyspark's Python foreach pickles rows in
 * growing batches, seconds at this job's rates). See sparky/transactional.py, which builds it.
 *
 * <p>Each task (one per input partition in real-time mode) writes through a transactional producer
 * ({@code <client id>.<query>.<writer id>.<task partition>}: a retried task fences its zombie) and a
 * timer commits every {@code commitEveryMs}: the records so far and, in the SAME transaction, the
 * input offsets they came from (Kafka's consume-transform-produce commit), per output: each row
 * names the output it belongs to ({@code risk}, {@code scores}), and each output has its own group
 * {@code <client id>-<query>-<writer id>-<output>}. Those offsets are where the query starts again
 * (sparky/transactional.py {@code resume}), so a row below its output's committed offset was written
 * before and is skipped: a replay after a crash writes nothing twice, and a query started again from
 * an earlier offset (scores catching up once a champion appears) writes only the outputs behind.
 * A task that ends cleanly leaves its producer to the same task of the next real-time batch in this
 * JVM. A row is one input record: {@code records} (each a {@code key}, {@code value}, {@code topic}
 * and {@code output}), {@code source_partition} and {@code source_offset} (of the {@code source}
 * topic); its records are written in one transaction.
 */
public class TransactionalRows extends ForeachWriter<Row> {
  private static final long serialVersionUID = 1L;
  private static final Logger LOG = LoggerFactory.getLogger(TransactionalRows.class);
  private static final Duration TIMEOUT = Duration.ofSeconds(60);

  private final HashMap<String, String> client; // Java client settings: servers, security
  private final String clientId;
  private final String query;
  private final String writerId; // kept in the query's checkpoint folder
  private final String source;
  private final long commitEveryMs;

  /** Producers (with their offsets reader) kept between real-time batches, by transactional id. */
  private static final ConcurrentHashMap<String, TransactionalRows> IDLE = new ConcurrentHashMap<>();

  private transient KafkaProducer<String, String> producer;
  private transient Map<String, KafkaConsumer<byte[], byte[]>> offsets; // output -> its group's reader
  private transient Map<String, Map<Integer, Long>> committed; // output -> input partition -> next offset
  private transient Map<String, Map<Integer, Long>> pending; // ... once the open transaction commits
  private transient ScheduledExecutorService timer;
  private transient String transactionalId;
  private transient volatile Exception error;
  private transient long skipped;

  public TransactionalRows(
      Map<String, String> client,
      String clientId,
      String query,
      String writerId,
      String source,
      long commitEveryMs) {
    this.client = new HashMap<>(client);
    this.clientId = clientId;
    this.query = query;
    this.writerId = writerId;
    this.source = source;
    this.commitEveryMs = commitEveryMs;
  }

  /** The group whose offsets say how far {@code output} of this query has been written. */
  String group(String output) {
    return clientId + "-" + query + "-" + writerId + "-" + output;
  }

  @Override
  public boolean open(long partitionId, long epochId) {
    String transactionalId = clientId + "." + query + "." + writerId + "." + partitionId;
    skipped = 0;
    error = null;
    // the last batch's producer in this JVM, if it ended cleanly: no new client, no initTransactions
    // (if another instance fenced it since, its first commit fails and the task is retried afresh)
    TransactionalRows idle = IDLE.remove(transactionalId);
    if (idle != null) {
      producer = idle.producer;
      offsets = idle.offsets;
      committed = idle.committed;
    } else {
      connect(transactionalId);
    }
    this.transactionalId = transactionalId;
    pending = new HashMap<>();
    producer.beginTransaction();
    timer =
        Executors.newSingleThreadScheduledExecutor(
            r -> {
              Thread t = new Thread(r, query + "-commits");
              t.setDaemon(true);
              return t;
            });
    timer.scheduleWithFixedDelay(this::tick, commitEveryMs, commitEveryMs, TimeUnit.MILLISECONDS);
    return true;
  }

  private void connect(String transactionalId) {
    Map<String, Object> p = new HashMap<>(client);
    p.put("client.id", clientId + "-" + query + "-tx");
    p.put("transactional.id", transactionalId);
    p.put("transaction.timeout.ms", "60000");
    p.put("enable.idempotence", "true");
    p.put("acks", "all");
    p.put("linger.ms", "0");
    producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    producer.initTransactions(); // fences a zombie of this task; its open transaction aborts
    offsets = new HashMap<>();
    committed = new HashMap<>();
  }

  /** The next offset of {@code partition} that {@code output} has not written (asked once). */
  private long next(String output, int partition) {
    Map<Integer, Long> done = committed.computeIfAbsent(output, o -> new HashMap<>());
    Long next = done.get(partition);
    if (next == null) {
      KafkaConsumer<byte[], byte[]> reader = offsets.computeIfAbsent(output, this::reader);
      TopicPartition tp = new TopicPartition(source, partition);
      OffsetAndMetadata found = reader.committed(Set.of(tp), TIMEOUT).get(tp);
      next = found == null ? 0L : found.offset();
      done.put(partition, next);
      LOG.info("{}: {} {} written up to offset {}", query, output, tp, next);
    }
    return next;
  }

  private KafkaConsumer<byte[], byte[]> reader(String output) {
    Map<String, Object> c = new HashMap<>(client);
    c.put("client.id", clientId + "-" + query + "-offsets");
    c.put("group.id", group(output));
    c.put("isolation.level", "read_committed"); // committed() waits for pending transactions
    c.put("enable.auto.commit", "false");
    return new KafkaConsumer<>(c, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  @Override
  public void process(Row row) {
    if (error != null) {
      throw new IllegalStateException(query + ": a transaction failed", error);
    }
    int partition = row.<Integer>getAs("source_partition");
    long offset = row.<Long>getAs("source_offset");
    List<Row> records = row.getList(row.fieldIndex("records"));
    synchronized (this) { // all of one input's records in the same transaction: a commit never splits them
      for (Row r : records) {
        String output = r.<String>getAs("output");
        if (offset < next(output, partition)) {
          skipped++;
          continue;
        }
        producer.send(new ProducerRecord<>(r.<String>getAs("topic"), r.<String>getAs("key"), r.<String>getAs("value")));
        pending.computeIfAbsent(output, o -> new HashMap<>()).put(partition, offset + 1);
      }
    }
  }

  /**
   * Commit the open transaction (records and input offsets) and, if {@code again}, begin the next;
   * an empty one is kept open, or aborted (no request: it holds nothing) when not {@code again}. A
   * producer closed with a transaction open waits out its close timeout.
   */
  private synchronized void commit(boolean again) {
    if (pending.isEmpty()) {
      if (!again) {
        producer.abortTransaction();
      }
      return;
    }
    for (Map.Entry<String, Map<Integer, Long>> output : pending.entrySet()) {
      Map<TopicPartition, OffsetAndMetadata> done = new HashMap<>();
      output.getValue().forEach((p, o) -> done.put(new TopicPartition(source, p), new OffsetAndMetadata(o)));
      producer.sendOffsetsToTransaction(done, new ConsumerGroupMetadata(group(output.getKey())));
    }
    producer.commitTransaction(); // flushes the records; fails if any failed
    pending.forEach((o, done) -> committed.computeIfAbsent(o, k -> new HashMap<>()).putAll(done));
    pending.clear();
    if (again) {
      producer.beginTransaction();
    }
  }

  private void tick() {
    if (error != null) {
      return;
    }
    try {
      commit(true);
    } catch (Exception e) {
      LOG.warn("{}: commit failed: {}", query, e.toString());
      error = e;
    }
  }

  @Override
  public void close(Throwable errorOrNull) {
    timer.shutdown(); // no interrupt: a commit under way completes; no more are scheduled
    try {
      timer.awaitTermination(60, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    synchronized (this) {
      boolean clean = false;
      try {
        if (errorOrNull == null && error == null) {
          commit(false);
          clean = true;
        } else {
          producer.abortTransaction();
        }
      } catch (Exception e) {
        if (error == null) {
          error = e;
        }
      } finally {
        if (clean) {
          IDLE.put(transactionalId, this); // for the next real-time batch of this task
        } else {
          producer.close(Duration.ofSeconds(10));
          offsets.values().forEach(reader -> reader.close(Duration.ofSeconds(5)));
        }
        if (skipped > 0) {
          LOG.info("{}: {} replayed rows skipped (written before)", query, skipped);
        }
      }
    }
    if (error != null && errorOrNull == null) {
      throw new IllegalStateException(query + ": a transaction failed", error);
    }
  }
}
