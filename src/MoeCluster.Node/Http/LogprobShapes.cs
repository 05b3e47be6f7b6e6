using System.Text;
using MoeCluster.Model.Generation;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Node.Http;

/// <summary>Token log-probabilities in OpenAI's two shapes: chat's <c>{"content":[{token, logprob, bytes,
/// top_logprobs}]}</c> and legacy completions' parallel lists. A token is shown as the text of its bytes (part of a
/// character shows as U+FFFD; <c>bytes</c> has the exact bytes); without a tokenizer as <c>token_id:N</c>, as vLLM does.
/// −∞ becomes −9999, vLLM's stand-in, since JSON has no infinity.</summary>
public sealed class LogprobShapes(ModelTokenizer? tokenizer)
{
    public string TokenText(int id) => tokenizer is null ? $"token_id:{id}" : Encoding.UTF8.GetString(tokenizer.TokenBytes(id));

    IReadOnlyList<int> Bytes(int id) => tokenizer is null ? [] : tokenizer.TokenBytes(id).Select(b => (int)b).ToArray();

    static float Finite(float v) => float.IsNegativeInfinity(v) || float.IsNaN(v) ? -9999f : v;

    public ChatLogprobs Chat(IEnumerable<TokenLogprob> logprobs) => new(logprobs.Select(l => new ChatTokenLogprob(TokenText(l.Token), Finite(l.Logprob), Bytes(l.Token),
        l.Top.Select(t => new ChatTopLogprob(TokenText(t.Token), Finite(t.Logprob), Bytes(t.Token))).ToArray())).ToArray());

    /// <summary>Completions logprobs for <paramref name="tokens"/> (null entries: the first prompt token), with text
    /// offsets counted from <paramref name="offset"/>.</summary>
    public CompletionLogprobs Completion(IReadOnlyList<TokenLogprob?> logprobs, IReadOnlyList<int> tokens, int offset)
    {
        var texts = new List<string>();
        var values = new List<float?>();
        var tops = new List<IReadOnlyDictionary<string, float>?>();
        var offsets = new List<int>();
        for (int i = 0; i < tokens.Count; i++)
        {
            string text = TokenText(tokens[i]);
            texts.Add(text);
            offsets.Add(offset);
            offset += text.Length;
            var l = logprobs[i];
            values.Add(l is null ? null : Finite(l.Logprob));
            if (l is null) { tops.Add(null); continue; }
            var top = new Dictionary<string, float>();
            foreach (var (t, v) in l.Top) top.TryAdd(TokenText(t), Finite(v));
            tops.Add(top);
        }
        return new CompletionLogprobs(texts, values, tops, offsets);
    }
}
