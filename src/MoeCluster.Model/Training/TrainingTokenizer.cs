using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeCluster.Model.Tokenization;

namespace MoeCluster.Model.Training;

/// <summary>Trains the byte-level BPE tokenizer of a new model and writes the tokenizer files of its checkpoint.
/// End-of-text is one special token after the BPE vocabulary; it is both BOS and EOS, as in GPT-2.</summary>
public static class TrainingTokenizer
{
    public const string EndOfText = "<|endoftext|>";

    /// <summary>The chat template trained checkpoints carry: ChatML turns written as text (the vocabulary has no chat
    /// tokens), so /v1/chat/completions works on them without a --chat-template.</summary>
    public const string ChatTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// <summary>Trains on <paramref name="documents"/> and writes tokenizer.json and tokenizer_config.json into
    /// <paramref name="directory"/>. Returns the end-of-text id (= <paramref name="vocabSize"/> − 1, or smaller when
    /// the text runs out of pairs to merge).</summary>
    public static int TrainAndWrite(IEnumerable<string> documents, int vocabSize, string directory, int modelMaxLength)
    {
        var (vocab, merges) = ByteLevelBpeTokenizerJson.Train(documents, vocabSize - 1);
        int endOfText = vocab.Values.Max() + 1;
        Directory.CreateDirectory(directory);
        ByteLevelBpeTokenizerJson.Write(Path.Combine(directory, "tokenizer.json"), vocab, merges, [(EndOfText, endOfText)]);
        var config = new JsonObject
        {
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
            ["bos_token"] = EndOfText,
            ["eos_token"] = EndOfText,
            ["unk_token"] = null,
            ["add_bos_token"] = false,
            ["add_eos_token"] = false,
            ["model_max_length"] = modelMaxLength,
            ["clean_up_tokenization_spaces"] = false,
            ["chat_template"] = ChatTemplate,
        };
        WriteJson(Path.Combine(directory, "tokenizer_config.json"), config);
        return endOfText;
    }

    /// <summary>Generation defaults of the checkpoint: stop at end-of-text.</summary>
    public static void WriteGenerationConfig(string directory, int endOfText) =>
        WriteJson(Path.Combine(directory, "generation_config.json"), new JsonObject
        {
            ["_from_model_config"] = true,
            ["bos_token_id"] = endOfText,
            ["eos_token_id"] = endOfText,
        });

    /// <summary>Token ids of each document without special tokens (the packer adds end-of-text).</summary>
    public static IReadOnlyList<IReadOnlyList<int>> Encode(ModelTokenizer tokenizer, IEnumerable<string> documents) =>
        documents.AsParallel().AsOrdered().Select(d => tokenizer.Encode(d, addSpecialTokens: false)).ToList();

    /// <summary>The end-of-text id of a tokenizer written by <see cref="TrainAndWrite"/>.</summary>
    public static int EndOfTextId(ModelTokenizer tokenizer, string directory) =>
        tokenizer.TokenToId(EndOfText) ?? throw new InvalidDataException($"{directory}: tokenizer has no '{EndOfText}' token");

    // Relaxed escaping keeps "<|endoftext|>" readable; both spellings are the same JSON.
    internal static void WriteJson(string path, JsonNode json) =>
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
}
