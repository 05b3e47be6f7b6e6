using System.CommandLine;
using System.Text.Json.Nodes;
using MoeCluster.Model.Tokenization;
using MoeCluster.Node.Chat;

namespace MoeCluster.Node.Commands;

/// <summary>`moecluster tokenize`: a checkpoint's tokenizer and chat template from the command line — the same
/// <see cref="ModelTokenizer"/> and <see cref="ChatPromptRenderer"/> the server loads, so what it prints is what a
/// request to that checkpoint is turned into.</summary>
public static class TokenizeCommand
{
    static readonly Option<string?> Model = new("--model") { Description = "checkpoint directory (default: the built-in model)" };
    static readonly Option<string?> Text = new("--text") { Description = "text to turn into ids" };
    static readonly Option<string?> Chat = new("--chat") { Description = "a JSON list of chat messages to render with the chat template, then turn into ids" };
    static readonly Option<string?> ChatTemplate = new("--chat-template") { Description = "Jinja file (or text) instead of the checkpoint's chat template" };
    static readonly Option<string?> Ids = new("--ids") { Description = "ids to turn back into text, e.g. 1,2,3" };
    static readonly Option<bool> NoSpecialTokens = new("--no-special-tokens") { Description = "with --text: do not add BOS/EOS; with --ids: keep special tokens in the text" };

    public static Command Create()
    {
        var c = new Command("tokenize", "Show the ids a checkpoint's tokenizer gives a text or chat (or the text of ids), as JSON.")
        {
            Model, Text, Chat, ChatTemplate, Ids, NoSpecialTokens,
        };
        c.SetAction(parse =>
        {
            try
            {
                Console.WriteLine(Run(parse).ToJsonString(new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or NotSupportedException or ChatTemplateException
                                      or MoeCluster.Node.Chat.Jinja.JinjaException or System.Text.Json.JsonException or DirectoryNotFoundException)
            {
                Console.Error.WriteLine($"moecluster tokenize: {e.Message}");
                return 2;
            }
        });
        return c;
    }

    static JsonObject Run(ParseResult p)
    {
        string dir = p.GetValue(Model) ?? DefaultModel.Directory();
        var tokenizer = ModelTokenizer.Load(dir) ?? throw new ArgumentException($"{dir} has no tokenizer.json or tokenizer.model");
        bool special = !p.GetValue(NoSpecialTokens);
        var result = new JsonObject { ["tokenizer"] = tokenizer.TokenizerFile, ["kind"] = tokenizer.Kind };
        if (p.GetValue(Ids) is string ids)
        {
            var list = ids.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(t => int.TryParse(t, out int v) ? v : throw new ArgumentException($"--ids: '{t}' is not an integer")).ToList();
            result["text"] = tokenizer.Decode(list, skipSpecialTokens: special);
            return result;
        }
        IReadOnlyList<int> tokens;
        if (p.GetValue(Chat) is string chat)
        {
            var messages = JsonNode.Parse(chat) as JsonArray ?? throw new ArgumentException("--chat must be a JSON list of messages");
            string prompt = ChatPromptRenderer.ForCheckpoint(tokenizer, p.GetValue(ChatTemplate)).Render(new ChatTemplateRequest(messages));
            result["prompt"] = prompt;
            // As the server does: the template writes the special tokens itself.
            tokens = tokenizer.Encode(prompt, addSpecialTokens: false);
        }
        else if (p.GetValue(Text) is string text) tokens = tokenizer.Encode(text, addSpecialTokens: special);
        else throw new ArgumentException("give --text TEXT, --chat JSON or --ids 1,2,3");
        result["count"] = tokens.Count;
        result["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t).ToArray());
        return result;
    }
}
