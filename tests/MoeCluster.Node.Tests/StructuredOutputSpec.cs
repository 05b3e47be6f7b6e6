using System.ClientModel;
using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using MoeCluster.Node.Tests.Support;
using OpenAI;
using OpenAI.Chat;

namespace MoeCluster.Node.Tests;

/// <summary>response_format and forced tool calls are enforced by constrained decoding: whatever the (random) model
/// prefers, the output parses and validates, and it is complete before max_tokens runs out.</summary>
[Collection(ServingCollection.Name)]
public sealed class StructuredOutputSpec(ServingFixture f)
{
    ChatClient Chat() => f.Chat();

    static readonly ChatMessage[] Ask = [new UserChatMessage("Describe a person as JSON.")];

    const string PersonSchema = """
        {"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"},
         "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":3},"nick":{"type":["string","null"],"maxLength":5}},
         "required":["name","age","tags"],"additionalProperties":false}
        """;

    static void AssertValid(string schema, string json)
    {
        var result = JsonSchema.FromText(schema).Evaluate(JsonNode.Parse(json), new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, $"{json} does not validate: {string.Join("; ", result.Details.Where(d => d.HasErrors).SelectMany(d => d.Errors!.Values))}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Official_client_json_schema_strict_output_always_parses_and_validates(int seed)
    {
        var options = new ChatCompletionOptions
        {
            Temperature = 1.3f, MaxOutputTokenCount = 90,
            ResponseFormat = ChatResponseFormat.CreateJsonSchemaFormat("person", BinaryData.FromString(PersonSchema), jsonSchemaIsStrict: true),
        };
#pragma warning disable OPENAI001
        options.Seed = seed;
#pragma warning restore OPENAI001
        var completion = (await Chat().CompleteChatAsync(Ask, options)).Value;
        AssertValid(PersonSchema, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
    }

    [Theory]
    [InlineData(12)]
    [InlineData(40)]
    public async Task Official_client_json_object_output_is_a_complete_object_within_max_tokens(int maxTokens)
    {
        var options = new ChatCompletionOptions { Temperature = 1, MaxOutputTokenCount = maxTokens, ResponseFormat = ChatResponseFormat.CreateJsonObjectFormat() };
        var completion = (await Chat().CompleteChatAsync(Ask, options)).Value;
        var json = JsonNode.Parse(completion.Content[0].Text);
        Assert.IsType<JsonObject>(json);
        Assert.True(completion.Usage.OutputTokenCount <= maxTokens);
    }

    [Fact]
    public async Task A_schema_the_grammar_cannot_enforce_is_a_400_naming_it()
    {
        var (status, json) = await f.Host.Http.PostJsonAsync("v1/chat/completions", new
        {
            model = f.Model.Name, messages = new[] { new { role = "user", content = "hi" } },
            response_format = new { type = "json_schema", json_schema = new { name = "x", schema = new { type = "string", pattern = "^a" } } },
        });
        Assert.Equal(400, status);
        OpenAiErrors.AssertError(json, "response_format.json_schema.schema");
        Assert.Contains("pattern", (string)json!["error"]!["message"]!);
    }

    const string WeatherParameters = """{"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}""";

    static ChatTool Weather => ChatTool.CreateFunctionTool("get_weather", "Current weather in a city", BinaryData.FromString(WeatherParameters), functionSchemaIsStrict: true);
    static ChatTool Time => ChatTool.CreateFunctionTool("get_time", "Current time", BinaryData.FromString("""{"type":"object","properties":{},"additionalProperties":false}"""));

    [Fact]
    public async Task Official_client_named_tool_choice_yields_a_valid_call_streaming_or_not_and_the_tool_result_is_accepted_next_turn()
    {
        var options = new ChatCompletionOptions { Temperature = 1, MaxOutputTokenCount = 120, Tools = { Weather, Time }, ToolChoice = ChatToolChoice.CreateFunctionChoice("get_weather") };
        var completion = (await Chat().CompleteChatAsync(Ask, options)).Value;
        Assert.Equal(ChatFinishReason.ToolCalls, completion.FinishReason);
        var call = Assert.Single(completion.ToolCalls);
        Assert.Equal("get_weather", call.FunctionName);
        AssertValid(WeatherParameters, call.FunctionArguments.ToString());

        string? name = null;
        var arguments = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync(Ask, options))
        {
            foreach (var t in update.ToolCallUpdates)
            {
                name ??= t.FunctionName;
                arguments.Append(t.FunctionArgumentsUpdate?.ToString());
            }
            finish ??= update.FinishReason;
        }
        Assert.Equal("get_weather", name);
        AssertValid(WeatherParameters, arguments.ToString());
        Assert.Equal(ChatFinishReason.ToolCalls, finish);

        ChatMessage[] next = [.. Ask, new AssistantChatMessage([call]), new ToolChatMessage(call.Id, """{"temperature":21}""")];
        var answer = (await Chat().CompleteChatAsync(next, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 4, Tools = { Weather } })).Value;
        Assert.True(answer.Usage.InputTokenCount > 0);
    }

    [Fact]
    public async Task Required_tool_choice_calls_one_of_the_tools()
    {
        var options = new ChatCompletionOptions { Temperature = 1, MaxOutputTokenCount = 60, Tools = { Weather, Time }, ToolChoice = ChatToolChoice.CreateRequiredChoice() };
        var completion = (await Chat().CompleteChatAsync(Ask, options)).Value;
        var call = Assert.Single(completion.ToolCalls);
        Assert.Contains(call.FunctionName, new[] { "get_weather", "get_time" });
        Assert.IsType<JsonObject>(JsonNode.Parse(call.FunctionArguments.ToString()));
    }

    [Fact]
    public async Task The_tools_reach_the_prompt_through_the_chat_template()
    {
        var (status, json) = await f.Host.Http.PostJsonAsync("tokenize", new
        {
            messages = new[] { new { role = "user", content = "Weather?" } },
            tools = new[] { new { type = "function", function = new { name = "get_weather", parameters = JsonDocument.Parse(WeatherParameters).RootElement } } },
        });
        Assert.Equal(200, status);
        var text = f.Model.Tokenizer.Decode(json!["tokens"]!.AsArray().Select(t => (int)t!), skipSpecialTokens: false);
        Assert.Contains("\"name\": \"get_weather\"", text);
        Assert.Contains("<tool_call>", text);
    }
}
