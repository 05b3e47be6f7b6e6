using System.ClientModel;
using System.Text;
using MoeCluster.Model.Generation;
using MoeCluster.Node.Tests.Support;
using OpenAI;
using OpenAI.Chat;

namespace MoeCluster.Node.Tests;

/// <summary>Compatibility proven by a client we did not write: the official OpenAI .NET library.</summary>
[Collection(ServingCollection.Name)]
public sealed class OpenAiClientSpec(ServingFixture f)
{
    ChatClient Chat(string key = "unused") => f.Chat(key);

    static readonly ChatMessage[] Conversation = [new SystemChatMessage("You are a helpful assistant."), new UserChatMessage("Hello there, world.")];

    /// <summary>What the model core generates greedily for the conversation rendered through the chat template.</summary>
    IReadOnlyList<int> Reference(int maxTokens)
    {
        string prompt = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello there, world.<|im_end|>\n<|im_start|>assistant\n";
        var tokens = f.Model.Tokenizer.Encode(prompt, addSpecialTokens: false);
        return f.Model.GenerateLocally(new GenerationRequest("ref", tokens, maxTokens) { StopTokenIds = f.Model.Tokenizer.EosTokenIds.ToArray() });
    }

    [Fact]
    public async Task Official_client_non_streaming_chat_gets_the_greedy_model_output_and_usage()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
        ChatCompletion completion = await Chat().CompleteChatAsync(Conversation, options);

        var expected = Reference(8);
        Assert.Equal(f.Model.Tokenizer.Decode(expected), completion.Content.Count == 0 ? "" : completion.Content[0].Text);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(expected.Count == 8 ? ChatFinishReason.Length : ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(expected.Count, completion.Usage.OutputTokenCount);
        Assert.True(completion.Usage.InputTokenCount > 10);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task Official_client_streaming_chat_yields_the_same_text_then_finish_reason_and_usage()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;
        int updates = 0;
        await foreach (var update in Chat().CompleteChatStreamingAsync(Conversation, options))
        {
            updates++;
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }
        var expected = Reference(8);
        Assert.Equal(f.Model.Tokenizer.Decode(expected), text.ToString());
        Assert.Equal(expected.Count == 8 ? ChatFinishReason.Length : ChatFinishReason.Stop, finish);
        Assert.True(updates >= 2, $"expected several stream updates, got {updates}");
        Assert.NotNull(usage);
        Assert.Equal(expected.Count, usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Official_client_lists_the_served_model()
    {
        var client = new OpenAIClient(new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(f.Host.BaseAddress, "v1") });
        var models = await client.GetOpenAIModelClient().GetModelsAsync();
        Assert.Contains(models.Value, m => m.Id == f.Model.Name);
    }

    [Fact]
    public async Task Official_client_sees_an_unknown_model_as_a_404_client_error()
    {
        var client = new ChatClient("no-such-model", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(f.Host.BaseAddress, "v1") });
        var e = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync(Conversation));
        Assert.Equal(404, e.Status);
        Assert.Contains("no-such-model", e.Message);
    }
}
