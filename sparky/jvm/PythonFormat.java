package loanstream;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;

/**
 * Numbers written exactly as Python writes them, for the few format specs the reasons use
 * (models/scoring/explain.py declares them): {@code ".Nf"}, {@code ",.Nf"}, {@code "g"} and {@code "repr"}
 * (an integral value as an int, else Python's {@code repr}: the shortest decimal that reads back as
 * the same double). Python rounds the exact binary value half to even; so does {@link BigDecimal}
 * built from a double, where Java's own Formatter rounds a shortened decimal half up (38.25 -> 38.3,
 * Python 38.2).
 */
public final class PythonFormat {
  private PythonFormat() {}

  /** {@code format(value, spec)} as Python gives it. */
  public static String format(double value, String spec) {
    if (Double.isNaN(value)) {
      return "nan";
    }
    boolean negative = Double.doubleToRawLongBits(value) < 0;
    if (Double.isInfinite(value)) {
      return negative ? "-inf" : "inf";
    }
    String body;
    double magnitude = Math.abs(value);
    if (spec.equals("repr")) {
      body = repr(magnitude);
    } else if (spec.equals("g")) {
      body = general(magnitude, 6);
    } else if (spec.matches(",?\\.\\d+f")) {
      boolean grouped = spec.startsWith(",");
      int digits = Integer.parseInt(spec.substring(grouped ? 2 : 1, spec.length() - 1));
      body = new BigDecimal(magnitude).setScale(digits, RoundingMode.HALF_EVEN).toPlainString();
      body = grouped ? group(body) : body;
    } else {
      throw new IllegalArgumentException("no Python format spec " + spec + " here");
    }
    return negative ? "-" + body : body;
  }

  /** An integral value as Python's {@code str(int(v))}, else {@code repr(v)}. */
  static String repr(double magnitude) {
    if (magnitude == Math.rint(magnitude)) {
      return new BigDecimal(magnitude).toBigInteger().toString();
    }
    BigDecimal exact = new BigDecimal(magnitude);
    BigDecimal shortest = exact;
    for (int p = 1; p <= 17; p++) {
      shortest = exact.round(new MathContext(p, RoundingMode.HALF_EVEN));
      if (shortest.doubleValue() == magnitude) {
        break;
      }
    }
    int exponent = shortest.precision() - shortest.scale() - 1;
    if (exponent < -4) {
      return scientific(shortest.stripTrailingZeros(), exponent);
    }
    String plain = shortest.stripTrailingZeros().toPlainString();
    return plain.contains(".") ? plain : plain + ".0";
  }

  /** Python's {@code format(v, "g")} (precision 6 by default). */
  static String general(double magnitude, int precision) {
    if (magnitude == 0) {
      return "0";
    }
    BigDecimal rounded = new BigDecimal(magnitude).round(new MathContext(precision, RoundingMode.HALF_EVEN));
    int exponent = rounded.precision() - rounded.scale() - 1;
    if (exponent < -4 || exponent >= precision) {
      return scientific(rounded.stripTrailingZeros(), exponent);
    }
    String plain = rounded.setScale(Math.max(precision - 1 - exponent, 0), RoundingMode.HALF_EVEN).toPlainString();
    if (plain.contains(".")) {
      plain = plain.replaceAll("0+$", "").replaceAll("\\.$", "");
    }
    return plain;
  }

  /** d.ddd e+XX: the significant digits of {@code digits}, the exponent at least two digits. */
  private static String scientific(BigDecimal digits, int exponent) {
    String unscaled = digits.unscaledValue().abs().toString();
    String mantissa = unscaled.length() > 1 ? unscaled.charAt(0) + "." + unscaled.substring(1) : unscaled;
    String sign = exponent < 0 ? "-" : "+";
    int e = Math.abs(exponent);
    return mantissa + "e" + sign + (e < 10 ? "0" + e : Integer.toString(e));
  }

  private static String group(String plain) {
    int point = plain.indexOf('.');
    String whole = point < 0 ? plain : plain.substring(0, point);
    StringBuilder out = new StringBuilder();
    for (int i = 0; i < whole.length(); i++) {
      if (i > 0 && (whole.length() - i) % 3 == 0) {
        out.append(',');
      }
      out.append(whole.charAt(i));
    }
    return point < 0 ? out.toString() : out + plain.substring(point);
  }
}
