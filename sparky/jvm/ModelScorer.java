package loanstream;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.io.Serializable;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.sql.Timestamp;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.spark.SparkFiles;
import org.apache.spark.sql.Column;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * The champion's exported network (models/training/nets.py {@code to_onnx}) as a Spark UDF: one application's
 * features in, its probability, decision and adverse-action reasons out, in the JVM, so the real-time
 * query scores without Python. Everything it does is data from Python (sparky/analyses/scores.py):
 * the ONNX file and its SHA-256, the decision thresholds, and per factor its code, field, text and
 * how its value is written (models/scoring/explain.py); tests/integration/test_parity.py holds it to the
 * Python scorer (models/scoring/scorer.py) on the same rows.
 *
 * <p>Input: a struct of {@code numeric} (float features), {@code codes} (category codes),
 * {@code numbers} and {@code texts} (per factor, the value its reason shows; null where missing or
 * where the factor's field is of the other kind) and {@code valid}. ONNX Runtime runs the file with
 * the options the Python scorer uses (models/scoring/network.py); a file whose digest differs is refused.
 */
public class ModelScorer implements UDF1<Row, Row>, Serializable {
  private static final long serialVersionUID = 1L;
  static final String[] DECISIONS = {"approve", "review", "decline"};
  static final StructType REASON =
      new StructType()
          .add("code", DataTypes.StringType, false)
          .add("text", DataTypes.StringType, false)
          .add("feature", DataTypes.StringType, false)
          .add("value", DataTypes.StringType, true)
          .add("contribution", DataTypes.DoubleType, false);
  static final StructType RESULT =
      new StructType()
          .add("probability", DataTypes.DoubleType, true)
          .add("decision", DataTypes.StringType, true)
          .add("reasons", DataTypes.createArrayType(REASON, false), false)
          .add("scored_at", DataTypes.TimestampType, false);
  private static final Map<String, OrtSession> SESSIONS = new ConcurrentHashMap<>();

  /** One factor of models/scoring/explain.py: how its reason reads. */
  static final class Factor implements Serializable {
    private static final long serialVersionUID = 1L;
    final String code;
    final String field;
    final String text; // with {value}
    final String kind; // "number", "text" or "none"
    final String spec; // Python format spec of a number ("" for a text)
    final double multiply;
    final double divide;
    final String prefix;
    final String suffix;

    Factor(JsonNode f) {
      code = f.get("code").asText();
      field = f.get("field").asText();
      text = f.get("text").asText();
      kind = f.get("kind").asText();
      spec = f.get("spec").asText();
      multiply = f.get("multiply").asDouble();
      divide = f.get("divide").asDouble();
      prefix = f.get("prefix").asText();
      suffix = f.get("suffix").asText();
    }

    /** The reason's text and the value the record carries, as models/scoring/explain.py writes them. */
    String[] shown(Double number, String value) {
      if (kind.equals("none")) {
        return new String[] {text.replace("{value}", "-"), null};
      }
      if (kind.equals("text")) {
        return new String[] {text.replace("{value}", value == null ? "missing" : prefix + value + suffix), value};
      }
      if (number == null) {
        return new String[] {text.replace("{value}", "missing"), null};
      }
      String written = prefix + PythonFormat.format(number * multiply / divide, spec) + suffix;
      return new String[] {text.replace("{value}", written), PythonFormat.format(number, "repr")};
    }
  }

  private final String model;
  private final String sha256;
  private final double review;
  private final double decline;
  private final int top;
  private final Factor[] factors;

  public ModelScorer(String config) {
    JsonNode c;
    try {
      c = new ObjectMapper().readTree(config);
    } catch (IOException e) {
      throw new IllegalArgumentException("not a scorer configuration: " + e.getMessage(), e);
    }
    model = c.get("model").asText();
    sha256 = c.get("sha256").asText();
    review = c.get("review").asDouble();
    decline = c.get("decline").asDouble();
    top = c.get("top").asInt();
    List<Factor> list = new ArrayList<>();
    c.get("factors").forEach(f -> list.add(new Factor(f)));
    factors = list.toArray(new Factor[0]);
  }

  /** The UDF over a struct column (see the class comment), nondeterministic: it stamps scored_at. */
  public static Column column(String config, Column input) {
    return functions.udf(new ModelScorer(config), RESULT).asNondeterministic().apply(input);
  }

  @Override
  public Row call(Row in) throws OrtException {
    Timestamp now = new Timestamp(System.currentTimeMillis());
    if (in.isNullAt(in.fieldIndex("valid")) || !in.getBoolean(in.fieldIndex("valid"))) {
      return RowFactory.create(null, null, List.of(), now);
    }
    List<Float> numeric = in.getList(in.fieldIndex("numeric"));
    List<Long> codes = in.getList(in.fieldIndex("codes"));
    float[] x = new float[numeric.size()];
    for (int i = 0; i < x.length; i++) {
      x[i] = numeric.get(i);
    }
    long[] k = codes.stream().mapToLong(Long::longValue).toArray();
    double[][] out = run(x, k);
    double p = out[0][0];
    int decision = (p >= review ? 1 : 0) + (p >= decline ? 1 : 0);
    List<Double> numbers = in.getList(in.fieldIndex("numbers"));
    List<String> texts = in.getList(in.fieldIndex("texts"));
    List<Row> reasons = new ArrayList<>();
    for (int g : ranked(out[1], top, decision == 2)) {
      String[] shown = factors[g].shown(numbers.get(g), texts.get(g));
      double contribution = Math.rint(out[1][g] * 1e4) / 1e4;
      reasons.add(RowFactory.create(factors[g].code, shown[0], factors[g].field, shown[1], contribution));
    }
    return RowFactory.create(Math.rint(p * 1e6) / 1e6, DECISIONS[decision], reasons, now);
  }

  /**
   * The factors a row's reasons list: by effect, largest first (ties: the lower index, as numpy's
   * stable argsort), at most {@code top}, only those that raise the risk, but a decline always its
   * largest.
   */
  static int[] ranked(double[] effects, int top, boolean decline) {
    Integer[] order = new Integer[effects.length];
    Arrays.setAll(order, i -> i);
    Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -effects[i]).thenComparingInt(i -> i));
    int[] kept = new int[Math.min(top, order.length)];
    int n = 0;
    for (int rank = 0; rank < kept.length; rank++) {
      if (effects[order[rank]] > 0 || (rank == 0 && decline)) {
        kept[n++] = order[rank];
      }
    }
    return Arrays.copyOf(kept, n);
  }

  /** Probability [1] and effects [G] of one row. */
  private double[][] run(float[] numeric, long[] codes) throws OrtException {
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    OrtSession session = session(model, sha256);
    try (OnnxTensor n = OnnxTensor.createTensor(env, FloatBuffer.wrap(numeric), new long[] {1, numeric.length});
        OnnxTensor c = OnnxTensor.createTensor(env, LongBuffer.wrap(codes), new long[] {1, codes.length});
        OrtSession.Result r = session.run(Map.of("numeric", n, "codes", c))) {
      double[] p = (double[]) r.get(0).getValue();
      double[][] effects = (double[][]) r.get(1).getValue();
      return new double[][] {p, effects[0]};
    }
  }

  /**
   * The session of {@code model} (a path, or a file Spark shipped with addFile), once per JVM and
   * digest; a file whose SHA-256 is not {@code sha256} is refused.
   */
  static OrtSession session(String model, String sha256) {
    return SESSIONS.computeIfAbsent(sha256, digest -> load(model, digest));
  }

  private static OrtSession load(String model, String expected) {
    File file = new File(model);
    if (!file.exists()) { // not on this machine: the copy Spark shipped (SparkContext.addFile)
      file = new File(SparkFiles.get(file.getName()));
    }
    try {
      byte[] bytes = Files.readAllBytes(file.toPath());
      String actual = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
      if (!actual.equals(expected)) {
        throw new IllegalStateException(
            "refusing " + file + ": its SHA-256 " + actual + " is not the registered " + expected);
      }
      OrtSession.SessionOptions options = new OrtSession.SessionOptions();
      options.setIntraOpNumThreads(1); // as models/scoring/network.py OPTIONS
      options.setInterOpNumThreads(1);
      options.setExecutionMode(OrtSession.SessionOptions.ExecutionMode.SEQUENTIAL);
      options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      return OrtEnvironment.getEnvironment().createSession(bytes, options);
    } catch (IOException | OrtException | NoSuchAlgorithmException e) {
      throw new IllegalStateException("cannot load the model " + file + ": " + e.getMessage(), e);
    }
  }
}
