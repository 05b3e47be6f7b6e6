using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using MoeCluster.Model.Grammar;

namespace MoeCluster.Model.Tests.Grammar;

/// <summary>The grammar compiled from a schema, run as a recognizer over the relevant files of the official JSON-Schema
/// test suite (draft 2020-12, copied in JsonSchemaTestSuite/ with its licence): it must never accept an instance the
/// suite calls invalid (so constrained output always validates), and it accepts most valid ones (it generates
/// properties only in schema order and only listed ones, so some valid instances are out of its reach). Schemas with
/// keywords it cannot enforce must be refused.</summary>
public class JsonSchemaSuiteSpec
{
    static readonly JsonSerializerOptions Raw = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static string SuiteDirectory => Path.Combine(AppContext.BaseDirectory, "Grammar", "JsonSchemaTestSuite");

    [Fact]
    public void The_grammar_never_accepts_an_instance_the_suite_calls_invalid_and_accepts_most_valid_ones()
    {
        int refused = 0, validAccepted = 0, validTotal = 0, invalidRejected = 0;
        var wrong = new List<string>();
        foreach (var file in Directory.GetFiles(SuiteDirectory, "*.json").Order())
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var group in doc.RootElement.EnumerateArray())
            {
                GrammarNode node;
                try { node = JsonSchemaCompiler.Compile(group.GetProperty("schema")); }
                catch (GrammarException) { refused++; continue; }
                foreach (var test in group.GetProperty("tests").EnumerateArray())
                {
                    string data = JsonSerializer.Serialize(test.GetProperty("data"), Raw);
                    bool valid = test.GetProperty("valid").GetBoolean();
                    bool accepted = JsonMatcher.Accepts(node, Encoding.UTF8.GetBytes(data));
                    if (accepted && !valid) wrong.Add($"{Path.GetFileName(file)}: '{group.GetProperty("description")}' / '{test.GetProperty("description")}': accepted {data}");
                    if (valid) { validTotal++; if (accepted) validAccepted++; }
                    else if (!accepted) invalidRejected++;
                }
            }
        }
        Assert.True(wrong.Count == 0, string.Join("\n", wrong));
        Assert.True(invalidRejected > 100, $"only {invalidRejected} invalid instances were checked");
        Assert.True(validAccepted >= validTotal * 0.7, $"accepted {validAccepted} of {validTotal} valid instances ({refused} schemas refused)");
    }

    [Theory]
    [InlineData("""{"type":"string","pattern":"^a"}""", "pattern")]
    [InlineData("""{"type":"integer","minimum":3}""", "minimum")]
    [InlineData("""{"type":"string","format":"email"}""", "format")]
    [InlineData("""{"prefixItems":[{"type":"integer"}]}""", "prefixItems")]
    [InlineData("""{"$ref":"http://example.com/x"}""", "$ref")]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string"}},"required":["b"]}""", "'b'")]
    public void A_keyword_the_grammar_cannot_enforce_is_refused_by_name(string schema, string named)
    {
        using var doc = JsonDocument.Parse(schema);
        var e = Assert.Throws<GrammarException>(() => JsonSchemaCompiler.Compile(doc.RootElement));
        Assert.Contains(named, e.Message);
    }
}
