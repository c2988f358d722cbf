package loanstream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The parts of ModelScorer that need no network: ranking, how reasons read, the digest check. */
class ModelScorerTest {
  @Test
  void ranksLargestFirstTiesByIndexOnlyRaisingUnlessADecline() {
    double[] effects = {0.1, 0.5, -0.2, 0.5, 0.0, 0.3};
    assertArrayEquals(new int[] {1, 3, 5, 0}, ModelScorer.ranked(effects, 4, false));
    assertArrayEquals(new int[] {1, 3}, ModelScorer.ranked(effects, 2, true));
    double[] lowering = {-0.3, -0.1, 0.0};
    assertArrayEquals(new int[] {}, ModelScorer.ranked(lowering, 4, false));
    assertArrayEquals(new int[] {2}, ModelScorer.ranked(lowering, 4, true)); // a decline keeps its largest
  }

  private static ModelScorer.Factor factor(String json) throws Exception {
    return new ModelScorer.Factor(new ObjectMapper().readTree(json));
  }

  @Test
  void reasonsReadAsModelsExplainWritesThem() throws Exception {
    ModelScorer.Factor dti =
        factor(
            "{\"code\":\"DTI_HIGH\",\"field\":\"dti\",\"text\":\"debt-to-income {value} % is high\",\"kind\":\"number\","
                + "\"spec\":\".1f\",\"multiply\":1,\"divide\":1,\"prefix\":\"\",\"suffix\":\"\"}");
    assertArrayEquals(new String[] {"debt-to-income 38.2 % is high", "38.25"}, dti.shown(38.25, null));
    assertArrayEquals(new String[] {"debt-to-income missing % is high", null}, dti.shown(null, null));
    ModelScorer.Factor rate =
        factor(
            "{\"code\":\"INTEREST_RATE_HIGH\",\"field\":\"int_rate\",\"text\":\"interest rate {value} is high\","
                + "\"kind\":\"number\",\"spec\":\".1f\",\"multiply\":100,\"divide\":1,\"prefix\":\"\",\"suffix\":\" %\"}");
    assertEquals("interest rate 10.7 % is high", rate.shown(0.1071, null)[0]);
    ModelScorer.Factor purpose =
        factor(
            "{\"code\":\"PURPOSE\",\"field\":\"purpose\",\"text\":\"loan purpose {value}\",\"kind\":\"text\","
                + "\"spec\":\"\",\"multiply\":1,\"divide\":1,\"prefix\":\"\",\"suffix\":\"\"}");
    assertArrayEquals(new String[] {"loan purpose car", "car"}, purpose.shown(null, "car"));
    assertEquals("loan purpose missing", purpose.shown(null, null)[0]);
    ModelScorer.Factor other =
        factor(
            "{\"code\":\"OTHER\",\"field\":\"\",\"text\":\"other application data\",\"kind\":\"none\","
                + "\"spec\":\"\",\"multiply\":1,\"divide\":1,\"prefix\":\"\",\"suffix\":\"\"}");
    assertEquals("other application data", other.shown(null, null)[0]);
    assertNull(other.shown(null, null)[1]);
  }

  @Test
  void aModelFileWhoseDigestDiffersIsRefused(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("model.onnx");
    Files.write(file, new byte[] {1, 2, 3});
    IllegalStateException refused =
        assertThrows(IllegalStateException.class, () -> ModelScorer.session(file.toString(), "00" + "ab".repeat(31)));
    assertTrue(refused.getMessage().contains("refusing"), refused.getMessage());
  }
}
