using System.Text.Json.Nodes;
using MoeCluster.Node.Chat;
using MoeCluster.Node.Chat.Jinja;
using MoeCluster.TestSupport;
using Xunit.Abstractions;

namespace MoeCluster.Node.Tests.Chat;

/// <summary>
/// Chat templates render exactly as transformers' apply_chat_template renders them: tests/data/chat-templates holds
/// the real templates of Qwen3 (and Qwen3-MoE), Mixtral, Mistral v0.3, Llama 3.1, DeepSeek-V3, OLMoE, gpt-oss and
/// Gemma 3, the conversations (cases.json) and what Python's Jinja2 configured as transformers configures it made of
/// them (reference.json, by make-reference.py), plus @huggingface/jinja's test cases rendered the same way.
/// </summary>
public sealed class ChatTemplateReferenceSpec(ITestOutputHelper output)
{
    static readonly string Data = TestData.Directory("chat-templates");
    static readonly JsonNode Reference = JsonNode.Parse(File.ReadAllText(Path.Combine(Data, "reference.json")))!;
    static readonly JsonNode Cases = JsonNode.Parse(File.ReadAllText(Path.Combine(Data, "cases.json")))!;

    /// <summary>The clock make-reference.py gives strftime_now.</summary>
    sealed class FixedClock() : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => new(2025, 7, 10, 12, 0, 0, TimeSpan.Zero);
        public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
    }

    public static TheoryData<string> Templates => new(Reference["templates"]!.AsObject().Select(p => p.Key));

    [Theory]
    [MemberData(nameof(Templates))]
    public void Every_conversation_renders_as_transformers_renders_it(string template)
    {
        var specials = Cases["special_tokens"]![template]!.AsObject().ToDictionary(p => p.Key, p => p.Value!.GetValue<string>());
        var renderer = new ChatPromptRenderer(new Dictionary<string, string> { ["default"] = File.ReadAllText(Path.Combine(Data, template + ".jinja")) },
            specials, clock: new FixedClock());
        var failures = new List<string>();
        int checkedCases = 0;
        foreach (var (name, expected) in Reference["templates"]![template]!.AsObject())
        {
            var conversation = Cases["conversations"]![name]!;
            var request = new ChatTemplateRequest(conversation["messages"]!.AsArray().DeepClone().AsArray())
            {
                Tools = conversation["tools"]?.GetValue<bool>() == true ? Cases["tools"]!.DeepClone().AsArray() : null,
                AddGenerationPrompt = conversation["add_generation_prompt"]?.GetValue<bool>() ?? true,
                Kwargs = conversation["kwargs"]?.DeepClone().AsObject(),
            };
            checkedCases++;
            string? ours = null, error = null;
            try { ours = renderer.Render(request); }
            catch (JinjaException e) { error = e.Message; }
            if (expected!["output"] is { } text && ours != text.GetValue<string>())
                failures.Add($"{name}: expected\n{text.GetValue<string>()}\n--- got {(error is null ? "\n" + ours : "error " + error)}");
            else if (expected["error"] is { } refusal && error is null)
                failures.Add($"{name}: Python refuses ({refusal.GetValue<string>()}), we rendered\n{ours}");
        }
        output.WriteLine($"{template}: {checkedCases - failures.Count}/{checkedCases} conversations as transformers renders them");
        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
    }

    [Fact]
    public void The_huggingface_jinja_test_cases_render_as_python_jinja2_renders_them()
    {
        var cases = JsonNode.Parse(File.ReadAllText(Path.Combine(Data, "hf-jinja-cases.json")))!.AsObject();
        var failures = new List<string>();
        int same = 0;
        foreach (var (name, expected) in Reference["hf_jinja"]!.AsObject())
        {
            var c = cases[name]!;
            string? ours = null, error = null;
            try
            {
                var variables = (Dictionary<string, object?>)ChatPromptRenderer.FromJson(c["context"] ?? new JsonObject())!;
                foreach (var (k, v) in ChatPromptRenderer.TemplateGlobals(new FixedClock())) variables.TryAdd(k, v);
                ours = JinjaTemplate.Compile(c["template"]!.GetValue<string>()).Render(variables);
            }
            catch (JinjaException e) { error = e.Message; }
            bool ok = expected!["output"] is { } text ? ours == text.GetValue<string>() : error is not null;
            if (ok) same++;
            else failures.Add($"{name}: expected {(expected["output"] is { } t ? "\n" + t : "an error: " + expected["error"])}\n--- got {(error is null ? "\n" + ours : "error " + error)}");
        }
        output.WriteLine($"@huggingface/jinja cases: {same}/{same + failures.Count} as Python's Jinja2 renders them");
        Assert.True(failures.Count == 0, $"{failures.Count} differ:\n" + string.Join("\n\n", failures.Take(15)));
    }
}
