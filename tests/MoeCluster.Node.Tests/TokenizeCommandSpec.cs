using System.Text.Json.Nodes;
using MoeCluster.Node.Tests.Support;

namespace MoeCluster.Node.Tests;

/// <summary>`moecluster tokenize` runs the tokenizer and chat template the server runs: its ids are the ones a
/// request is prefilled with (the server's prompt_tokens count).</summary>
[Collection(ServingCollection.Name)]
public sealed class TokenizeCommandSpec(ServingFixture f)
{
    static JsonNode Tokenize(params string[] args)
    {
        var output = new StringWriter();
        var previous = Console.Out;
        Console.SetOut(output);
        try { Assert.Equal(0, Cli.Run(["tokenize", .. args])); }
        finally { Console.SetOut(previous); }
        return JsonNode.Parse(output.ToString())!;
    }

    [Fact]
    public async Task The_cli_gives_the_ids_the_server_prefills_for_a_completion_and_a_chat()
    {
        const string text = "The quick brown fox 🙂 数据";
        var cli = Tokenize("--model", f.Model.Directory, "--text", text);
        Assert.Equal(f.Model.Tokenizer.Encode(text), cli["tokens"]!.AsArray().Select(n => n!.GetValue<int>()));
        var (_, completion) = await f.Host.Http.PostJsonAsync("v1/completions", new { model = f.Model.Name, prompt = text, max_tokens = 1 });
        Assert.Equal(cli["count"]!.GetValue<int>(), completion!["usage"]!["prompt_tokens"]!.GetValue<int>());

        var chat = Tokenize("--model", f.Model.Directory, "--chat", """[{"role":"user","content":"Hello there"}]""");
        var (_, reply) = await f.Host.Http.PostJsonAsync("v1/chat/completions", new { model = f.Model.Name, messages = new[] { new { role = "user", content = "Hello there" } }, max_tokens = 1 });
        Assert.Equal(chat["count"]!.GetValue<int>(), reply!["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.StartsWith("<|im_start|>system", chat["prompt"]!.GetValue<string>());

        var back = Tokenize("--model", f.Model.Directory, "--ids", string.Join(",", f.Model.Tokenizer.Encode(text)));
        Assert.Equal(text, back["text"]!.GetValue<string>());
    }
}
