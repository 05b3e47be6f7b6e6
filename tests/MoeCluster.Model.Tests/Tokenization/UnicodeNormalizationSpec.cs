using System.Text;
using System.Text.Json;
using MoeCluster.Model.Tokenization.Unicode;
using MoeCluster.TestSupport;

namespace MoeCluster.Model.Tests.Tokenization;

public sealed class UnicodeNormalizationSpec
{
    [Fact]
    public void String_normalize_is_a_no_op_here_which_is_why_the_managed_normaliser_exists()
    {
        // The project runs with InvariantGlobalization: .NET's own normalisation leaves non-ASCII text as it is.
        Assert.Equal("e\u0301", "e\u0301".Normalize(NormalizationForm.FormC));
        Assert.Equal("é", UnicodeNormalization.Normalize("e\u0301", NormalizationForm.FormC));
    }

    [Theory]
    [InlineData("e\u0301", "\u00E9", "e\u0301", "\u00E9", "e\u0301")]
    [InlineData("\u212B", "\u00C5", "A\u030A", "\u00C5", "A\u030A")]
    [InlineData("a\u0302\u0323", "\u1EAD", "a\u0323\u0302", "\u1EAD", "a\u0323\u0302")]
    [InlineData("\u1100\u1161\u11A8", "\uAC01", "\u1100\u1161\u11A8", "\uAC01", "\u1100\u1161\u11A8")]
    [InlineData("ﬁ①ｆ", "ﬁ①ｆ", "ﬁ①ｆ", "fi1f", "fi1f")]
    public void The_four_forms_match_uax_15(string input, string nfc, string nfd, string nfkc, string nfkd)
    {
        Assert.Equal(nfc, UnicodeNormalization.Normalize(input, NormalizationForm.FormC));
        Assert.Equal(nfd, UnicodeNormalization.Normalize(input, NormalizationForm.FormD));
        Assert.Equal(nfkc, UnicodeNormalization.Normalize(input, NormalizationForm.FormKC));
        Assert.Equal(nfkd, UnicodeNormalization.Normalize(input, NormalizationForm.FormKD));
    }

    [Fact]
    public void Lowercase_is_the_full_per_character_mapping_with_no_final_sigma_rule()
    {
        Assert.Equal("i\u0307stanbul σσ straße", UnicodeNormalization.ToLower("İSTANBUL ΣΣ STRAßE"));
    }

    [Fact]
    public void Random_mixtures_of_starters_and_combining_marks_normalise_as_python_unicodedata_does()
    {
        // Characters that decompose, compose, reorder or block: the algorithm, not just the tables, is checked.
        int[] pool = [0x41, 0x61, 0x65, 0x6F, 0x55, 0x3B1, 0x1100, 0x1161, 0x11A8, 0xAC00, 0x300, 0x301, 0x302, 0x308,
            0x323, 0x327, 0x328, 0x31B, 0x345, 0x5B0, 0x5B4, 0x93C, 0x94D, 0xE48, 0x1E0B, 0x1E63, 0x212B, 0x2126, 0xFB01,
            0x2460, 0xFF21, 0x1D15E, 0x1D165, 0x1D16E, 0x0344, 0x0F73, 0x0CC6, 0x0CC2, 0x0CD5, 0x3099, 0x304B, 0x30AB, 0xC0, 0xE9];
        var random = new Random(16);
        var inputs = Enumerable.Range(0, 5000).Select(_ =>
        {
            var sb = new StringBuilder();
            for (int n = random.Next(1, 9); n > 0; n--)
            {
                sb.Append(char.ConvertFromUtf32(pool[random.Next(pool.Length)]));
            }
            return sb.ToString();
        }).ToList();
        const string script = """
            import json, sys, unicodedata
            for line in sys.stdin.read().split("\n"):
                if line:
                    s = json.loads(line)
                    print(json.dumps([unicodedata.normalize(f, s) for f in ("NFC", "NFD", "NFKC", "NFKD")]))
            """;
        var expected = PythonReference.Run(script, string.Join("\n", inputs.Select(i => JsonSerializer.Serialize(i))) + "\n")
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonSerializer.Deserialize<string[]>(l)!).ToList();
        NormalizationForm[] forms = [NormalizationForm.FormC, NormalizationForm.FormD, NormalizationForm.FormKC, NormalizationForm.FormKD];
        for (int i = 0; i < inputs.Count; i++)
        {
            for (int f = 0; f < forms.Length; f++)
            {
                Assert.Equal(expected[i][f], UnicodeNormalization.Normalize(inputs[i], forms[f]));
            }
        }
    }
}
