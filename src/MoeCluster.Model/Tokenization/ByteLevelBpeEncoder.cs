using System.Text;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace MoeCluster.Model.Tokenization;

/// <summary>Turns text into ids (no BOS/EOS); the ids-to-text direction is shared in <see cref="TokenTable"/>.</summary>
internal interface ITextEncoder
{
    List<int> Encode(string text);
}

/// <summary>
/// Byte-level BPE (GPT-2, Qwen, OLMoE, Llama 3): added tokens are cut out first, the rest is normalised and split by
/// the checkpoint's pre-tokenizer regexes, and each piece is merged by Microsoft.ML.Tokenizers' BpeTokenizer.
/// We split ourselves and hand BpeTokenizer one piece at a time with pre-tokenisation off: its own default
/// pre-tokenizer silently drops spaces and newlines (dotnet/machinelearning #7715), and it has no notion of HF's
/// Split sequences or added tokens.
/// </summary>
internal sealed class ByteLevelBpeEncoder : ITextEncoder
{
    private readonly BpeTokenizer _bpe;
    private readonly AddedTokenSplitter _added;
    private readonly IReadOnlyList<SplitStep> _splits;
    private readonly IReadOnlyList<NormalizationForm> _normalizations;
    private readonly bool _addPrefixSpace;
    private readonly Dictionary<string, int>? _wholeWords;

    public ByteLevelBpeEncoder(TokenizerJsonFile file, IEnumerable<AddedToken> addedTokens)
    {
        try
        {
            _bpe = BpeTokenizer.Create(new BpeOptions(file.Vocab)
            {
                Merges = file.Merges.Select(m => $"{m.Left} {m.Right}"),
                ByteLevel = true,
                // Unused on our path (we pass one pre-split piece at a time) but keeps the tokenizer right if it is
                // ever called on whole text: without it BpeTokenizer drops whitespace.
                PreTokenizer = new RegexPreTokenizer(new Regex(TokenizerJsonFile.Gpt2SplitPattern, RegexOptions.Compiled), null),
            });
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidDataException($"{file.Path}: model.vocab and model.merges do not form a BPE model: {ex.Message}", ex);
        }
        _added = new AddedTokenSplitter(addedTokens);
        _splits = file.Splits;
        _normalizations = file.Normalizations;
        _addPrefixSpace = file.AddPrefixSpace;
        // ignore_merges (Llama 3): a pre-tokenised word that is itself in the vocab is one token.
        _wholeWords = file.IgnoreMerges ? file.Vocab : null;
    }

    public List<int> Encode(string text)
    {
        var ids = new List<int>();
        foreach (var (segment, addedId) in _added.Split(text))
        {
            if (addedId is int id)
            {
                ids.Add(id);
                continue;
            }
            string normalized = segment;
            // Under InvariantGlobalization (Directory.Build.props) string.Normalize leaves non-ASCII text as it is,
            // so decomposed input is only composed where ICU is in use; most text arrives in NFC already.
            foreach (var form in _normalizations)
            {
                normalized = normalized.Normalize(form);
            }
            if (_addPrefixSpace && !normalized.StartsWith(' '))
            {
                normalized = " " + normalized;
            }
            foreach (string word in PreTokenize(normalized))
            {
                EncodeWord(word, ids);
            }
        }
        return ids;
    }

    private void EncodeWord(string word, List<int> ids)
    {
        if (_wholeWords is not null && _wholeWords.TryGetValue(ByteLevelAlphabet.Encode(word), out int whole))
        {
            ids.Add(whole);
            return;
        }
        ids.AddRange(_bpe.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false));
    }

    private List<string> PreTokenize(string text)
    {
        var pieces = new List<string> { text };
        foreach (var step in _splits)
        {
            var next = new List<string>(pieces.Count * 4);
            foreach (string piece in pieces)
            {
                int position = 0;
                foreach (Match match in step.Pattern.Matches(piece))
                {
                    if (match.Length == 0)
                    {
                        continue;
                    }
                    if (match.Index > position)
                    {
                        next.Add(piece[position..match.Index]);
                    }
                    if (!step.RemoveMatches)
                    {
                        next.Add(match.Value);
                    }
                    position = match.Index + match.Length;
                }
                if (position < piece.Length)
                {
                    next.Add(piece[position..]);
                }
            }
            pieces = next;
        }
        return pieces;
    }
}
