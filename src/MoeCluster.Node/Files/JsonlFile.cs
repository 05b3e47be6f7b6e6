using System.Buffers;
using System.Text.Unicode;
using MoeCluster.Node.Http;

namespace MoeCluster.Node.Files;

/// <summary>Checks an uploaded JSONL file line by line, streaming from disk: UTF-8 throughout (the first line that is
/// not is named), at least one non-blank line, at most a given number.</summary>
public static class JsonlFile
{
    public static async Task<int> CheckAsync(string path, int maxLines, CancellationToken cancellation)
    {
        await using var input = File.OpenRead(path);
        var buffer = new byte[1 << 16];
        var line = new ArrayBufferWriter<byte>();
        int number = 0, lines = 0, n;
        void EndLine()
        {
            number++;
            var bytes = line.WrittenSpan;
            if (bytes.Length > 0 && bytes[^1] == '\r') bytes = bytes[..^1];
            if (!Utf8.IsValid(bytes)) throw ApiException.BadRequest("file", $"line {number} of the file is not valid UTF-8", "invalid_encoding");
            if (!bytes.Trim(" \t"u8).IsEmpty && ++lines > maxLines) throw ApiException.BadRequest("file", $"a job holds at most {maxLines} lines", "too_many_lines");
            line.ResetWrittenCount();
        }
        while ((n = await input.ReadAsync(buffer, cancellation)) > 0)
        {
            var chunk = buffer.AsSpan(0, n);
            int newline;
            while ((newline = chunk.IndexOf((byte)'\n')) >= 0)
            {
                line.Write(chunk[..newline]);
                EndLine();
                chunk = chunk[(newline + 1)..];
            }
            line.Write(chunk);
        }
        if (line.WrittenCount > 0) EndLine();
        if (lines == 0) throw ApiException.BadRequest("file", "the file has no lines; send JSONL with one request per line");
        return lines;
    }
}
